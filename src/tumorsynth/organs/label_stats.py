"""Measuring a label file: volume, centroid, extent and HU of every id, in one subsampled pass.

:func:`measure_label` is what the label-map check (:mod:`tumorsynth.organs.label_check`) and the
tumor-capacity check (:mod:`tumorsynth.organs.tumor_capacity`) read; they never touch the voxels
again. Only the labelled voxels of a grid subsampled to about 3 mm are visited (IRCAD 1.7,
512 x 512 x 151 at 0.78 x 0.78 x 1.6 mm: the whole check takes about 0.05 s on 2 cores; see
``benchmarks/bench_trust.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["LabelStats", "OrganStats", "measure_label"]

#: The label is sampled every ``SAMPLE_MM // spacing`` voxels along each axis (at least 1).
SAMPLE_MM = 3.0
#: Median HU is read from a histogram of this range and bin width (HU).
HU_RANGE = (-1100, 1500)
HU_BIN = 5
#: Image voxels above this (HU) are the body, whose centre the centroids are measured from.
BODY_HU = -500.0


@dataclass(frozen=True)
class OrganStats:
    """Several ids of one label file measured as one organ (e.g. kidney = right + left).

    ``volume_ml``: estimated from the sampled grid; ``centroid_mm``: offset from the body's centre
    along the patient's (right, anterior, superior); ``cut``: the field of view's edge cuts it;
    ``median_hu``: None without an image.
    """

    volume_ml: float
    centroid_mm: np.ndarray
    cut: bool
    median_hu: float | None


@dataclass
class LabelStats:
    """Per-id measurements of one label file: row ``r`` of every array describes ``ids[r]``.

    Attributes
    ----------
    where
        The label file's name, for messages.
    ids
        Ids present on the sampled grid (> 0), ascending.
    volume_ml
        Volume per id (mL), estimated from the sampled grid (each sample stands for the voxels
        of its stride).
    centroid_mm
        (n, 3): offset of the centroid from the body's centre (mm) along the patient's right,
        anterior and superior directions.
    counts
        Sampled voxels per id.
    cut
        The field of view's edge cuts the id.
    hu_hist
        (n, bins): histogram of the sampled HU inside each id (:data:`HU_RANGE`, :data:`HU_BIN`);
        None without an image.
    box_mm
        (n, 2, 3): first and last sampled voxel index x spacing (mm), per axis.
    """

    where: str
    ids: np.ndarray
    volume_ml: np.ndarray
    centroid_mm: np.ndarray
    counts: np.ndarray
    cut: np.ndarray
    hu_hist: np.ndarray | None
    box_mm: np.ndarray

    def rows(self, ids: Iterable[int]) -> np.ndarray:
        """Rows of the ids among ``ids`` that are present (absent ones are skipped)."""
        return np.flatnonzero(np.isin(self.ids, np.fromiter(ids, dtype=np.int64)))

    def describe(self, ids: Iterable[int], limit: int = 8) -> str:
        """``"1 (1430 mL), 5 (287 mL)"``: the ``limit`` largest, then how many more."""
        rows = sorted(self.rows(ids), key=lambda r: -self.volume_ml[r])
        text = ", ".join(f"{int(self.ids[r])} ({self.volume_ml[r]:.0f} mL)" for r in rows[:limit])
        return text + (f" and {len(rows) - limit} more" if len(rows) > limit else "")

    def group(self, ids: Iterable[int]) -> OrganStats | None:
        """``ids`` measured together as one organ; None when none of them is present."""
        rows = self.rows(ids)
        if not rows.size or self.counts[rows].sum() == 0:
            return None
        weights = self.counts[rows].astype(float)
        centroid = (self.centroid_mm[rows] * weights[:, None]).sum(0) / weights.sum()
        median = None
        if self.hu_hist is not None:
            hist = self.hu_hist[rows].sum(0)
            if hist.sum():
                k = int(np.searchsorted(np.cumsum(hist), hist.sum() / 2.0))
                median = HU_RANGE[0] + (k + 0.5) * HU_BIN
        return OrganStats(
            float(self.volume_ml[rows].sum()), centroid, bool(self.cut[rows].any()), median
        )


def measure_label(
    label: np.ndarray,
    affine: np.ndarray,
    image: np.ndarray | None = None,
    *,
    where: str = "<label>",
) -> LabelStats:
    """Volume, centroid, extent, cut flag and HU histogram of every id (one subsampled pass).

    Parameters
    ----------
    label
        Label ids, 3-D (uint8 or uint16 as :func:`~tumorsynth.io.nifti.load_label` gives are
        fastest).
    affine
        Voxel-to-world (mm). nibabel world space is RAS+ (+x toward the patient's right, +y
        anterior, +z superior) whatever the file's axis codes, so the centroids are in patient
        directions.
    image
        The CT (HU) on the same grid, for the HU histograms and the body's centre (voxels above
        -500 HU); without it (or on another grid) the field of view's centre is used.
    where
        The label file's name, for messages.

    Examples
    --------
    >>> label = np.zeros((20, 20, 10), np.uint8)
    >>> label[12:18, 5:15, 2:8] = 1
    >>> stats = measure_label(label, np.diag([3.0, 3.0, 3.0, 1.0]))  # 3 mm: every voxel sampled
    >>> stats.ids.tolist(), stats.counts.tolist(), stats.volume_ml.round(2).tolist()
    ([1], [360], [9.72])
    >>> bool(stats.cut[0]), stats.box_mm[0].tolist()  # (first, last) voxel x spacing, per axis
    (False, [[36.0, 15.0, 6.0], [51.0, 42.0, 21.0]])
    """
    affine = np.asarray(affine, dtype=float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    stride = [max(1, int(SAMPLE_MM // s)) for s in spacing]
    sample = tuple(slice(None, None, k) for k in stride)
    # a copy in the label's own memory order (nibabel's are Fortran): np.nonzero is twice as
    # fast on it as on the strided view; only the labelled voxels (ids > 0) are visited after
    sub = label[sample].copy(order="K")
    voxels = np.nonzero(sub > 0)
    values = sub[voxels]
    if values.dtype in (np.uint8, np.uint16):  # load_label gives these
        ids = np.flatnonzero(np.bincount(values))
        lut = np.zeros(int(ids[-1]) + 1 if ids.size else 1, dtype=np.intp)
        lut[ids] = np.arange(ids.size)
        rows = lut[values]
    else:
        ids, rows = np.unique(values, return_inverse=True)
    n = ids.size
    counts = np.bincount(rows, minlength=n)
    volume_ml = counts * float(np.prod(stride) * np.prod(spacing)) / 1000.0
    centroid_vox = np.zeros((n, 3))
    cut = np.zeros(n, dtype=bool)
    box = np.zeros((n, 2, 3))
    for axis in range(3):
        size = sub.shape[axis]
        # (id, index along this axis) histogram of the labelled voxels
        hist = np.bincount(rows * size + voxels[axis], minlength=n * size).reshape(n, size)
        centroid_vox[:, axis] = hist @ (np.arange(size) * stride[axis]) / np.maximum(counts, 1)
        cut |= (hist[:, 0] > 0) | (hist[:, -1] > 0)
        filled = hist > 0
        first = np.argmax(filled, axis=1)
        last = size - 1 - np.argmax(filled[:, ::-1], axis=1)
        box[:, 0, axis] = first * stride[axis] * spacing[axis]
        box[:, 1, axis] = last * stride[axis] * spacing[axis]
    body = np.array(label.shape, dtype=float) / 2.0 - 0.5
    hu_hist = None
    if image is not None and image.shape == label.shape:
        img = image[sample]
        inside = img > BODY_HU
        total = np.count_nonzero(inside)
        if total:
            body = (
                np.array(
                    [
                        (np.arange(img.shape[a]) * stride[a])
                        @ inside.sum(axis=tuple(b for b in range(3) if b != a))
                        for a in range(3)
                    ]
                )
                / total
            )
        bins = (HU_RANGE[1] - HU_RANGE[0]) // HU_BIN
        hu = np.asarray(img[voxels], dtype=np.float32)
        hu_bin = np.clip((hu - HU_RANGE[0]) // HU_BIN, 0, bins - 1).astype(np.intp)
        hu_hist = np.bincount(rows * bins + hu_bin, minlength=n * bins).reshape(n, bins)
    offsets = (centroid_vox - body) @ affine[:3, :3].T
    return LabelStats(where, ids.astype(np.int64), volume_ml, offsets, counts, cut, hu_hist, box)
