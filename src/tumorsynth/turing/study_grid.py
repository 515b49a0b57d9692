"""The grid of a reader study's items: a scan seen in LPS, the study's spacing and crop shape,
and :func:`crop_item`, which cuts every item the same way (the parts of
:func:`tumorsynth.turing.study.create_study` that put items on one grid).

Items are cut in LPS (x to the patient's left, y posterior, z superior; arrays ``(z, y, x)``)
through :class:`LpsGrid`, a view of the scan's array (flips and an axis permutation from
:mod:`nibabel.orientations`, no copy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from nibabel import orientations
from scipy import ndimage

from tumorsynth.errors import InputError
from tumorsynth.io.nifti import spacing_from_affine

__all__ = [
    "MARGIN_MM",
    "MIN_CROP_MM",
    "PAD_HU",
    "SAME_SPACING_MM",
    "LpsGrid",
    "crop_item",
    "crop_shape",
    "grid_spacing",
]

#: Value of item voxels outside the scan (air).
PAD_HU = -1024
#: ``crop_mm: auto``: the largest tumor's extent plus this margin on each side (mm) ...
MARGIN_MM = 20.0
#: ... and at least this much per axis (mm).
MIN_CROP_MM = 48.0
#: Spacings that differ by less than this (mm) are the same (``spacing_mm: native``).
SAME_SPACING_MM = 1e-3


@dataclass(frozen=True)
class LpsGrid:
    """A scan's voxel grid seen in LPS, axes ``(z, y, x)``.

    Attributes
    ----------
    transform
        nibabel orientation transform from the file's axes to (L, P, S).
    old_from_new
        4 x 4 map from LPS voxel indices ``(x, y, z)`` to the file's ``(i, j, k)``.
    spacing_zyx
        Voxel size in mm along z, y, x.
    """

    transform: np.ndarray
    old_from_new: np.ndarray
    spacing_zyx: tuple[float, float, float]

    @classmethod
    def of(cls, affine: np.ndarray, shape: Sequence[int]) -> LpsGrid:
        """The LPS grid of a scan with this affine and shape.

        Examples
        --------
        >>> grid = LpsGrid.of(np.diag([2.0, 3.0, 4.0, 1.0]), (5, 6, 7))  # RAS, spacing 2, 3, 4
        >>> grid.spacing_zyx, grid.zyx_of((0, 0, 6))
        ((4.0, 3.0, 2.0), (6.0, 5.0, 4.0))
        """
        transform = orientations.ornt_transform(
            orientations.io_orientation(affine), orientations.axcodes2ornt(("L", "P", "S"))
        )
        old_from_new = orientations.inv_ornt_aff(transform, tuple(shape))
        spacing = spacing_from_affine(np.asarray(affine) @ old_from_new)
        return cls(transform, old_from_new, (spacing[2], spacing[1], spacing[0]))

    def view(self, array: np.ndarray) -> np.ndarray:
        """``array`` (the file's axis order) as LPS ``(z, y, x)``: a view, not a copy."""
        return orientations.apply_orientation(array, self.transform).transpose(2, 1, 0)

    def zyx_of(self, vox: Sequence[float]) -> tuple[float, float, float]:
        """LPS ``(z, y, x)`` index of the file's voxel ``(i, j, k)``."""
        x, y, z = (np.linalg.inv(self.old_from_new) @ [*map(float, vox), 1.0])[:3]
        return (float(z), float(y), float(x))

    def permute_zyx(self, per_file_axis: Sequence[float]) -> tuple[float, float, float]:
        """Values given per file axis ``(i, j, k)`` (sizes, not positions) in LPS ``(z, y, x)``."""
        old_axis = np.abs(self.old_from_new[:3, :3]).argmax(axis=0)  # file axis of each x, y, z
        x, y, z = (float(per_file_axis[int(a)]) for a in old_axis)
        return (z, y, x)


def crop_item(
    image_zyx: np.ndarray,
    center_zyx: Sequence[float],
    source_spacing_zyx: Sequence[float],
    spacing_zyx: Sequence[float],
    shape_zyx: Sequence[int],
) -> np.ndarray:
    """The item: ``shape_zyx`` voxels of ``spacing_zyx`` mm centred on ``center_zyx`` (an index
    of ``image_zyx``), linearly interpolated, :data:`PAD_HU` outside the scan, int16.

    Every item passes through this one interpolation, whatever the spacing of its scan, so no
    item is sharper or smoother than another for a reason that has to do with where it came
    from. With an odd shape the middle voxel of the item lies exactly on the centre voxel.
    Only the part of the scan the item covers is converted to float (never the whole volume).

    Examples
    --------
    >>> scan = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    >>> item = crop_item(scan, (2, 3, 3), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (3, 3, 3))
    >>> bool(np.array_equal(item, scan[1:4, 2:5, 2:5])), item.dtype.str
    (True, '<i2')
    >>> int(crop_item(scan, (0, 0, 0), (1, 1, 1), (1, 1, 1), (3, 3, 3))[0, 0, 0])
    -1024
    """
    ratio = np.asarray(spacing_zyx, float) / np.asarray(source_spacing_zyx, float)
    half = (np.asarray(shape_zyx, float) - 1.0) / 2.0
    low = np.asarray(center_zyx, float) - half * ratio
    high = np.asarray(center_zyx, float) + half * ratio
    start = np.maximum(0, np.floor(low).astype(int))
    stop = np.minimum(image_zyx.shape, np.floor(high).astype(int) + 2)
    if np.any(stop <= start):
        return np.full(tuple(shape_zyx), PAD_HU, dtype="<i2")
    part = image_zyx[tuple(slice(a, b) for a, b in zip(start, stop))].astype(np.float32)
    values = ndimage.affine_transform(
        part,
        ratio,
        offset=low - start,
        output_shape=tuple(int(n) for n in shape_zyx),
        output=np.float32,
        order=1,
        mode="constant",
        cval=float(PAD_HU),
        prefilter=False,
    )
    info = np.iinfo(np.int16)
    return np.clip(np.rint(values), info.min, info.max).astype("<i2")


def grid_spacing(
    spec: str | Sequence[float], spacings: Sequence[Sequence[float]], where: str
) -> tuple[float, float, float]:
    """The study grid's spacing (z, y, x in mm) for the scans of the items (their LPS
    spacings): ``"common"``, the coarsest per axis; ``"native"``, their one spacing (InputError
    at ``where`` when they differ: a spacing would tell readers where an item came from); or
    the given ``[z, y, x]``.

    Examples
    --------
    >>> grid_spacing("common", [(1.6, 0.743, 0.743), (1.6, 0.782, 0.782)], "s.yaml")
    (1.6, 0.782, 0.782)
    """
    if not isinstance(spec, str):
        chosen = tuple(float(v) for v in spec)
    else:
        distinct = sorted({tuple(float(v) for v in s) for s in spacings})
        if spec == "native":
            spread = np.ptp(np.asarray(distinct), axis=0)
            if np.any(spread > SAME_SPACING_MM):
                raise InputError(
                    where,
                    "spacing_mm: native keeps each scan's spacing, but the scans of the items "
                    f"have {len(distinct)} different spacings (z, y, x in mm: "
                    f"{', '.join(str(tuple(round(v, 3) for v in s)) for s in distinct)}); a "
                    "reader could tell an item's source (and so its class) from its spacing",
                    fix="use spacing_mm: common (every item resampled to one grid) or [z, y, x]",
                )
            chosen = distinct[0]
        else:
            chosen = tuple(float(v) for v in np.max(np.asarray(distinct), axis=0))
    return (round(chosen[0], 6), round(chosen[1], 6), round(chosen[2], 6))


def crop_shape(
    spec: str | Sequence[float],
    half_extents_mm: Sequence[Sequence[float]],
    spacing_zyx: Sequence[float],
) -> tuple[int, int, int]:
    """Voxels per axis (z, y, x) of every item: ``spec`` mm, or for ``"auto"`` twice the largest
    half extent plus :data:`MARGIN_MM` on each side, at least :data:`MIN_CROP_MM`; rounded up
    to an odd number of voxels, so the tumor's centre voxel is the item's middle voxel.

    Examples
    --------
    >>> crop_shape("auto", [(10.0, 20.0, 3.0)], (2.0, 1.0, 1.0))
    (31, 81, 49)
    """
    if isinstance(spec, str):
        extent = np.max(np.asarray(half_extents_mm, float), axis=0) * 2.0
        size_mm = np.maximum(extent + 2.0 * MARGIN_MM, MIN_CROP_MM)
    else:
        size_mm = np.asarray(spec, float)
    voxels = [max(1, math.ceil(mm / s - 1e-6)) for mm, s in zip(size_mm, spacing_zyx)]
    z, y, x = (n if n % 2 else n + 1 for n in voxels)
    return (z, y, x)
