"""The scan's own noise, shared by every generator that keeps it inside its tumors.

A generator replaces a tissue's low-frequency content (:func:`low_pass`, a Gaussian of
:data:`NOISE_SIGMA_MM`) and keeps the high-frequency residual, the scan's noise
(:func:`scan_noise`), so a tumor's noise has the scan's own amplitude and grain. The scale is the
one :class:`~tumorsynth.organs.context.OrganContext` measures the organ's noise with.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from tumorsynth.box import Box
from tumorsynth.organs.context import NOISE_SIGMA_MM

__all__ = ["NOISE_SIGMA_MM", "low_pass", "scan_noise"]

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
    rng = np.random.default_rng(seed)
    grain = ndi.gaussian_filter(
        rng.standard_normal(widened.shape, dtype=np.float32),
        sigma=_GRAIN_SIGMA_VOX,
        truncate=3.0,
    )
    grain *= np.float32(noise_hu / max(float(grain.std()), 1e-6))
    sub = noise[box]
    sub[widened] = np.clip(grain[widened], -clip, clip)
    return noise
