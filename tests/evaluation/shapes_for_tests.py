"""Constructed volumes shared by the evaluation tests."""

import numpy as np


def ball(
    shape: tuple[int, int, int],
    center_mm: tuple[float, float, float],
    radius_mm: float,
    spacing_mm: tuple[float, float, float],
) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of ``center_mm`` (voxel i at i * spacing)."""
    axes = [np.arange(n) * s - c for n, s, c in zip(shape, spacing_mm, center_mm)]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    return x**2 + y**2 + z**2 <= radius_mm**2
