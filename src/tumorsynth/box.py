"""Voxel boxes (crops of a scan) and their arithmetic: around a point, around a mask, union, overlap.

Every per-tumor step works in a crop (DESIGN: cost grows with the tumor, not with the scan), so
boxes are shared by organs, shapes, generators and pipelines; this module sits below all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Box"]


@dataclass(frozen=True)
class Box:
    """A crop of the scan: ``origin`` voxel and ``shape``; ``slices`` index the full volume.

    Examples
    --------
    >>> a, b = Box((0, 0, 0), (4, 4, 4)), Box((2, 3, 1), (4, 4, 4))
    >>> a.union(b), a.overlaps(b), a.overlaps(Box((4, 0, 0), (1, 1, 1)))
    (Box(origin=(0, 0, 0), shape=(6, 7, 5)), True, False)
    >>> mask = np.zeros((8, 8, 8), dtype=bool)
    >>> mask[2:4, 5, 1:7] = True
    >>> Box.of_mask(mask, margin=(1, 1, 1))
    Box(origin=(1, 4, 0), shape=(4, 3, 8))
    """

    origin: tuple[int, int, int]
    shape: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(o, o + n) for o, n in zip(self.origin, self.shape))  # type: ignore[return-value]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def inner(self, other: Box) -> tuple[slice, slice, slice]:
        """Slices of ``other`` (which must lie inside this box) relative to this box."""
        return tuple(
            slice(b - a, b - a + n)  # type: ignore[return-value]
            for a, b, n in zip(self.origin, other.origin, other.shape)
        )

    def union(self, other: Box) -> Box:
        """The smallest box holding both boxes."""
        lo = [min(a, b) for a, b in zip(self.origin, other.origin)]
        hi = [
            max(a + n, b + m)
            for a, n, b, m in zip(self.origin, self.shape, other.origin, other.shape)
        ]
        return Box(tuple(lo), tuple(top - bottom for bottom, top in zip(lo, hi)))  # type: ignore[arg-type]

    def overlaps(self, other: Box) -> bool:
        """Whether the boxes share a voxel."""
        return all(
            a < b + m and b < a + n
            for a, n, b, m in zip(self.origin, self.shape, other.origin, other.shape)
        )

    @classmethod
    def around(
        cls,
        center_vox: Sequence[float],
        half_mm: Sequence[float] | float,
        spacing_mm: Sequence[float],
        volume_shape: Sequence[int],
    ) -> Box:
        """The box of voxels within ``half_mm`` of ``center_vox`` along each axis, clipped."""
        half = [half_mm] * 3 if isinstance(half_mm, (int, float)) else list(half_mm)
        lo = [max(0, int(math.floor(c - h / s))) for c, h, s in zip(center_vox, half, spacing_mm)]
        hi = [
            min(n, int(math.ceil(c + h / s)) + 1)
            for c, h, s, n in zip(center_vox, half, spacing_mm, volume_shape)
        ]
        hi = [max(top, bottom + 1) for bottom, top in zip(lo, hi)]
        return cls(tuple(lo), tuple(top - bottom for bottom, top in zip(lo, hi)))  # type: ignore[arg-type]

    @classmethod
    def of_mask(cls, mask: np.ndarray, margin: Sequence[int] = (0, 0, 0)) -> Box | None:
        """The bounding box of a 3-D boolean mask grown by ``margin`` voxels per axis and clipped
        to the mask's grid; None when the mask is empty.

        One projection per axis; each later pass reads only the part the earlier ones kept.
        """
        lo, hi = [0, 0, 0], [0, 0, 0]
        narrowed = mask
        for axis in (2, 1, 0):
            others = tuple(a for a in range(3) if a != axis)
            hits = np.flatnonzero(narrowed.any(axis=others))
            if hits.size == 0:
                return None
            first, last = int(hits[0]), int(hits[-1])
            index = [slice(None)] * 3
            index[axis] = slice(first, last + 1)
            narrowed = narrowed[tuple(index)]
            lo[axis] = max(0, first - int(margin[axis]))
            hi[axis] = min(mask.shape[axis], last + 1 + int(margin[axis]))
        return cls(tuple(lo), tuple(top - bottom for bottom, top in zip(lo, hi)))  # type: ignore[arg-type]
