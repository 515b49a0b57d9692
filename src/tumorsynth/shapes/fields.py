"""Smooth random fields in physical space (mm), used for elastic deformation and tumor texture.

A field is a cubic B-spline through Gaussian random coefficients on a regular control grid of
``scale_mm`` spacing, anchored at the tumor centre. Evaluation is three small matrix products
(separable basis), so it costs far less than filtering white noise over a crop, and it is exact to
replay: the field's values at a point depend only on the seed, scale and extent, never on the crop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bspline_matrix", "crop_axes_mm", "smooth_random_field"]


def bspline_matrix(
    positions_mm: np.ndarray, spacing_mm: float, n_coef: int, first_knot_mm: float
) -> np.ndarray:
    """Cubic B-spline basis: row ``i`` holds the weights of the ``n_coef`` control values at
    ``positions_mm[i]`` (control point ``c`` sits at ``first_knot_mm + c * spacing_mm``)."""
    t = (np.asarray(positions_mm, dtype=np.float64) - first_knot_mm) / spacing_mm
    base = np.floor(t).astype(np.int64)
    f = t - base
    weights = (
        (1 - f) ** 3 / 6,
        (3 * f**3 - 6 * f**2 + 4) / 6,
        (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6,
        f**3 / 6,
    )
    out = np.zeros((t.size, n_coef), dtype=np.float32)
    rows = np.arange(t.size)
    for offset, w in zip((-1, 0, 1, 2), weights):
        col = base + offset
        ok = (col >= 0) & (col < n_coef)
        out[rows[ok], col[ok]] = w[ok]
    return out


def crop_axes_mm(
    origin_vox: Sequence[int],
    shape: Sequence[int],
    spacing_mm: Sequence[float],
    center_vox: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre positions of a crop along each axis, in mm relative to ``center_vox``."""
    return tuple(  # type: ignore[return-value]
        ((o + np.arange(n)) - c) * s
        for o, n, s, c in zip(origin_vox, shape, spacing_mm, center_vox)
    )


def smooth_random_field(
    axes_mm: Sequence[np.ndarray],
    *,
    scale_mm: float,
    extent_mm: float,
    seed: int,
    components: int = 1,
) -> np.ndarray:
    """Unit-variance smooth random field(s) sampled on a grid, float32 ``(components, nx, ny, nz)``.

    Parameters
    ----------
    axes_mm
        Sample positions along each axis in mm, relative to the field's anchor (the tumor centre).
    scale_mm
        Control-point spacing: the correlation length of the field.
    extent_mm
        Half-width of the region the field is defined over; fixes the coefficient grid, so the
        same ``(seed, scale_mm, extent_mm)`` gives the same values wherever they are sampled.
    seed
        Seed of the coefficients.

    Examples
    --------
    >>> ax = np.linspace(-10, 10, 21)
    >>> f = smooth_random_field((ax, ax, ax), scale_mm=4.0, extent_mm=12.0, seed=1)
    >>> f.shape, bool(abs(float(f.std()) - 1) < 0.5)
    ((1, 21, 21, 21), True)
    """
    half = int(math.ceil(extent_mm / scale_mm)) + 2
    n_coef = 2 * half + 1
    first = -half * scale_mm
    coef = np.random.default_rng(seed).standard_normal(
        (components, n_coef, n_coef, n_coef), dtype=np.float32
    )
    mats = [bspline_matrix(ax, scale_mm, n_coef, first) for ax in axes_mm]
    # The spline's per-point variance is separable (sum of squared weights per axis), so scaling
    # each basis row normalizes the field to unit variance exactly, at no extra cost.
    bx, by, bz = (m / np.sqrt(np.maximum((m * m).sum(axis=1, keepdims=True), 1e-12)) for m in mats)
    nx, ny, nz = bx.shape[0], by.shape[0], bz.shape[0]
    out = np.empty((components, nx, ny, nz), dtype=np.float32)
    for c in range(components):
        t = (coef[c].reshape(n_coef * n_coef, n_coef) @ bz.T).reshape(n_coef, n_coef, nz)
        t = np.matmul(by[None], t)  # (cx, ny, nz)
        np.matmul(bx, t.reshape(n_coef, ny * nz), out=out[c].reshape(nx, ny * nz))
    return out
