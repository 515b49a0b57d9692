"""Crops on the learned model's grid, sampled straight from a scan at its native spacing.

The model works on cubes of ``size`` voxels at ``spacing_mm`` whose axes run along the RAS world
axes. Rather than resampling whole scans, a crop is read by trilinear interpolation
(``torch.nn.functional.grid_sample``) at the crop's points expressed in the scan's voxel
coordinates, and results go back the same way. The scan's orientation (which voxel axis runs along
which world axis, and in which direction) comes from its affine, so LPS and RAS scans give the same
crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CropGrid", "orientation_of"]


def orientation_of(affine: np.ndarray | None) -> tuple[tuple[int, int], ...]:
    """Per voxel axis, ``(RAS axis, +1 or -1)``; the identity when ``affine`` is None."""
    if affine is None:
        return ((0, 1), (1, 1), (2, 1))
    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=float))
    return tuple((int(axis), int(flip)) for axis, flip in ornt)


@dataclass(frozen=True)
class CropGrid:
    """A model-grid cube centred at ``center_vox`` of a scan (voxel coordinates).

    Attributes
    ----------
    center_vox
        Centre of the cube in the scan's voxel coordinates (may be fractional).
    native_spacing_mm
        The scan's voxel size along its voxel axes.
    orientation
        Per voxel axis ``(RAS axis, direction)`` (:func:`orientation_of`).
    spacing_mm
        The cube's voxel size along the RAS axes.
    size
        Edge length of the cube (voxels).
    """

    center_vox: tuple[float, float, float]
    native_spacing_mm: tuple[float, float, float]
    orientation: tuple[tuple[int, int], ...]
    spacing_mm: tuple[float, float, float]
    size: int

    def _scale(self) -> np.ndarray:
        """Per voxel axis: native voxels per model voxel (signed), and the model axis."""
        return np.array(
            [
                flip * self.spacing_mm[axis] / self.native_spacing_mm[a]
                for a, (axis, flip) in enumerate(self.orientation)
            ]
        )

    def native_points(self) -> np.ndarray:
        """(N, N, N, 3) voxel coordinates in the scan of the cube's points (cube axes = RAS)."""
        half = (self.size - 1) / 2.0
        steps = np.arange(self.size, dtype=np.float64) - half
        scale = self._scale()
        points = np.zeros((self.size,) * 3 + (3,), dtype=np.float64)
        for a, (axis, _) in enumerate(self.orientation):
            shape = [1, 1, 1]
            shape[axis] = self.size
            points[..., a] = self.center_vox[a] + (steps * scale[a]).reshape(shape)
        return points

    def model_points(self, origin: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """(X, Y, Z, 3) cube coordinates (voxels, cube axis order) of the scan voxels in the box
        ``origin``/``shape``: the inverse of :meth:`native_points`."""
        half = (self.size - 1) / 2.0
        scale = self._scale()
        points = np.zeros((*shape, 3), dtype=np.float64)
        for a, (axis, _) in enumerate(self.orientation):
            idx = np.arange(origin[a], origin[a] + shape[a], dtype=np.float64)
            view = [1, 1, 1]
            view[a] = shape[a]
            points[..., axis] = ((idx - self.center_vox[a]) / scale[a] + half).reshape(view)
        return points

    def read(self, volume: torch.Tensor, *, mode: str = "bilinear") -> torch.Tensor:
        """Sample the cube from ``volume`` (X, Y, Z) or (1, 1, X, Y, Z) -> (1, 1, N, N, N);
        points outside the scan take the nearest edge value."""
        vol = volume.reshape(1, 1, *volume.shape[-3:])
        grid = _normalized(self.native_points(), vol.shape[-3:], vol.device)
        return F.grid_sample(vol, grid, mode=mode, padding_mode="border", align_corners=True)

    def write_back(
        self, cube: torch.Tensor, origin: Sequence[int], shape: Sequence[int]
    ) -> torch.Tensor:
        """Values of ``cube`` (N, N, N or 1, 1, N, N, N) at the scan voxels of the box
        ``origin``/``shape`` -> (X, Y, Z)."""
        vol = cube.reshape(1, 1, *cube.shape[-3:])
        grid = _normalized(self.model_points(origin, shape), vol.shape[-3:], vol.device)
        out = F.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out[0, 0]


def _normalized(points: np.ndarray, dims: Sequence[int], device: torch.device) -> torch.Tensor:
    """Voxel coordinates (..., 3) in volume axis order -> grid_sample's (1, ..., 3), which is
    normalized to [-1, 1] (align_corners) and lists the last axis first."""
    scale = np.array([2.0 / max(int(d) - 1, 1) for d in dims])
    grid = points * scale - 1.0
    tensor = torch.from_numpy(grid[..., ::-1].astype(np.float32).copy())
    return tensor.unsqueeze(0).to(device)
