"""The organ analysis of a hollow organ (colon, esophagus), whose mask holds its lumen too.

Its "parenchyma" is its wall: the mask's voxels within the profile's ``tissue_hu``, wherever they
lie (the wall is thin: no depth rule), smoothed and measured without the lumen's voxels (air,
fluid, oral contrast), which are where a wall tumor grows, not obstacles.
:class:`~tumorsynth.organs.context.OrganContext` calls :func:`hollow_parenchyma` for a profile
with ``tissue_hu`` and :func:`tissue_residual` for its noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tumorsynth.organs.profile import OrganProfile

__all__ = ["hollow_parenchyma", "in_range", "masked_smooth", "thin", "tissue_residual"]


def hollow_parenchyma(
    image: np.ndarray,
    organ_mask: np.ndarray,
    bbox: tuple[slice, slice, slice],
    image_c: np.ndarray,
    mask_c: np.ndarray,
    sigma_c: list[float],
    profile: OrganProfile,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The wall of a hollow organ on the coarse grid (``image_c``, ``mask_c``): its voxels, the
    HU sample measured, their median and the bright vessels in it."""
    tissue = profile.tissue_hu
    if tissue is None:
        raise ValueError(f"organ profile {profile.name!r} has no tissue_hu: not a hollow organ")
    interior = in_range(image_c, tissue) & mask_c
    if interior.sum() < 20:  # a few cells on the coarse grid: read the full grid
        full = image[bbox][organ_mask[bbox]]
        values = thin(full[in_range(full, tissue)].astype(np.float32))
    else:
        values = thin(image_c[interior])
    if not values.size:  # no tissue at all: the whole mask (and the range warning)
        values = thin(image_c[mask_c])
    median = float(np.median(values))
    smooth = masked_smooth(image_c, interior, sigma_c)
    vessels = interior & (smooth > median + profile.vessel_threshold_hu)
    return interior, values, median, vessels


def tissue_residual(
    image: np.ndarray,
    organ_mask: np.ndarray,
    bbox: tuple[slice, slice, slice],
    slices: tuple[int, np.ndarray, np.ndarray],
    sigma: list[float],
    tissue_hu: tuple[float, float],
) -> np.ndarray:
    """The 2 mm high-pass residual on slice ``k`` of ``slices = (k, neighbour slices, their
    weights)`` at the organ's voxels in ``tissue_hu``, where most of the low-pass's reach is
    tissue too: the low-pass is a normalized convolution of the in-range voxels, so the air
    beside a thin wall does not turn its edge into "noise"."""
    k, ks, weights = slices
    plane_shape = (bbox[0].stop - bbox[0].start, bbox[1].stop - bbox[1].start)
    weighted = np.zeros(plane_shape, dtype=np.float32)
    share = np.zeros(plane_shape, dtype=np.float32)
    for w, kk in zip(weights, ks):
        plane = image[bbox[0], bbox[1], kk].astype(np.float32)
        inside = in_range(plane, tissue_hu).astype(np.float32)
        weighted += w * plane * inside
        share += w * inside
    weighted = ndi.gaussian_filter(weighted, sigma=sigma[:2], truncate=3.0)
    share = ndi.gaussian_filter(share, sigma=sigma[:2], truncate=3.0)
    plane = image[bbox[0], bbox[1], k].astype(np.float32)
    keep = organ_mask[bbox[0], bbox[1], k] & in_range(plane, tissue_hu) & (share > 0.5)
    return plane[keep] - weighted[keep] / share[keep]


def in_range(values: np.ndarray, hu_range: tuple[float, float]) -> np.ndarray:
    """``lo <= values <= hi`` for ``hu_range = (lo, hi)``."""
    return (values >= hu_range[0]) & (values <= hu_range[1])


def masked_smooth(image: np.ndarray, mask: np.ndarray, sigma: list[float]) -> np.ndarray:
    """Gaussian smoothing of ``image`` over the voxels of ``mask`` only (a normalized
    convolution: the lumen beside a wall neither darkens nor brightens it)."""
    weight = ndi.gaussian_filter(mask.astype(np.float32), sigma=sigma, truncate=2.5)
    total = ndi.gaussian_filter(np.where(mask, image, 0.0), sigma=sigma, truncate=2.5)
    return np.asarray(total / np.maximum(weight, np.float32(1e-6)), dtype=np.float32)


def thin(values: np.ndarray, limit: int = 200_000) -> np.ndarray:
    """At most ``limit`` evenly spaced samples (statistics of a million voxels need not see all)."""
    step = max(1, values.size // limit)
    return values[::step]
