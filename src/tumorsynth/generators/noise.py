"""The scan's own noise, shared by every generator that keeps it inside its tumors.

A generator replaces a tissue's low-frequency content (:func:`low_pass`, a Gaussian of
:data:`NOISE_SIGMA_MM`) and keeps the high-frequency residual, the scan's noise
(:func:`scan_noise`), so a tumor's noise has the scan's own amplitude and grain. The scale is the
one :class:`~tumorsynth.organs.context.OrganContext` measures the organ's noise with.

Real tumors are more heterogeneous at fine scale than their host; :func:`tumor_grain` is a
tumor's own fine-grained texture, with the CT-like grain of the stand-in noise, that a generator
adds on top of the scan's noise (its amplitude set relative to the scan's measured noise).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tumorsynth.box import Box
from tumorsynth.organs.context import NOISE_SIGMA_MM

__all__ = ["NOISE_SIGMA_MM", "low_pass", "scan_noise", "tumor_grain"]

#: The residual is clipped at this many noise std, so vessels do not shine through a tumor.
_NOISE_CLIP = 2.5
#: Correlation (Gaussian std, voxels) of the stand-in noise's CT-like grain.
_GRAIN_SIGMA_VOX = 0.7


def low_pass(image: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """The tissue's low-frequency content: a Gaussian of ``NOISE_SIGMA_MM`` (float32)."""
    sigma = [NOISE_SIGMA_MM / s for s in spacing_mm]
    return ndi.gaussian_filter(image, sigma=sigma, truncate=2.5)


def scan_noise(
    background: np.ndarray,
    low: np.ndarray,
    weight: np.ndarray,
    parenchyma_hu: float,
    noise_hu: float,
    seed: int,
) -> np.ndarray:
    """The scan's own noise (clipped high-pass residual ``background - low``) where the tissue
    under the tumor is parenchyma; where it is not (fat, vessel walls), the residual would carry
    that anatomy's edges into the tumor, so Gaussian noise of the same std and a CT-like grain
    (seeded by ``seed``) stands in. Shared by every generator that keeps the scan's noise."""
    noise_hu = max(noise_hu, 1.0)
    clip = np.float32(_NOISE_CLIP * noise_hu)
    noise = np.clip(background - low, -clip, clip)
    foreign = np.abs(low - np.float32(parenchyma_hu)) > np.float32(max(4 * noise_hu, 50.0))
    foreign &= weight > 0.01
    found = Box.of_mask(foreign, margin=(2, 2, 2))
    if found is None:
        return noise
    box = found.slices
    # Widen by 2 voxels (the residual also carries the edge's shoulders) and draw the stand-in
    # noise only in the box around the foreign voxels: a deterministic function of the crop.
    widened = ndi.binary_dilation(foreign[box], iterations=2) & (weight[box] > 0.01)
    grain = _grain(widened.shape, seed)
    grain *= np.float32(noise_hu / max(float(grain.std()), 1e-6))
    sub = noise[box]
    sub[widened] = np.clip(grain[widened], -clip, clip)
    return noise


def tumor_grain(shape: tuple[int, ...], std_hu: float, seed: int) -> np.ndarray:
    """Fine-grained texture of a tumor (float32 HU, mean 0, std ``std_hu``) on a crop of
    ``shape``: white noise with the CT-like grain of the stand-in noise (Gaussian correlation of
    0.7 voxel, a 3-tap kernel per axis), a deterministic function of ``(shape, std_hu, seed)``.

    Added to the scan's own noise inside a tumor, it raises the fine-scale noise there to about
    ``sqrt(noise**2 + std_hu**2)``. The std is set from the filter's kernel, not measured, so
    it does not depend on the draw. The white noise is the sum of two uniform draws (5x cheaper
    than normal noise); after the filter its excess kurtosis is about -0.15 (Gaussian: 0),
    diluted further by the scan's own noise it is added to.

    Examples
    --------
    >>> g = tumor_grain((60, 60, 30), 10.0, seed=3)
    >>> g.dtype, bool(abs(float(g[3:-3, 3:-3, 3:-3].std()) - 10.0) < 0.3)
    (dtype('float32'), True)
    """
    rng = np.random.default_rng(seed)
    white = rng.random(shape, dtype=np.float32)
    white += rng.random(shape, dtype=np.float32)
    white -= np.float32(1.0)  # triangular on (-1, 1): std sqrt(1 / 6)
    # A 3-tap kernel: the 5-tap one's outer taps weigh 0.017 and cost twice the time.
    grain = ndi.gaussian_filter(white, sigma=_GRAIN_SIGMA_VOX, truncate=_TUMOR_GRAIN_TRUNCATE)
    grain *= np.float32(std_hu * np.sqrt(6.0) / _TUMOR_GRAIN_STD)
    return grain


def _grain(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Seeded white noise smoothed to a CT-like grain (std :data:`_GRAIN_STD`), float32."""
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(
        rng.standard_normal(shape, dtype=np.float32), sigma=_GRAIN_SIGMA_VOX, truncate=3.0
    )


def _grain_std(truncate: float) -> float:
    """Std of unit white noise after the grain filter (3-D, away from the crop's faces): the
    product over the axes of the 1-D kernel's root sum of squares."""
    radius = int(truncate * _GRAIN_SIGMA_VOX + 0.5)  # the radius scipy's truncate gives
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / _GRAIN_SIGMA_VOX) ** 2)
    kernel /= kernel.sum()
    return float(np.sqrt((kernel**2).sum()) ** 3)


#: The tumor grain's filter reaches 1 voxel (3 taps per axis) ...
_TUMOR_GRAIN_TRUNCATE = 1.5
#: ... and its output for unit white noise has this std.
_TUMOR_GRAIN_STD = _grain_std(_TUMOR_GRAIN_TRUNCATE)
