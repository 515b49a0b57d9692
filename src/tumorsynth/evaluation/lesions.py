"""Lesion-level and patient-level detection: components, size strata, matching, false positives.

Definitions (DESIGN.md, "Evaluation: definitions"):

- A **lesion** is a 26-connected component of the ground-truth tumor mask. It is **detected** when
  at least one predicted tumor voxel overlaps it.
- Its **equivalent radius** is that of the sphere of the same volume, ``r = (3 V / 4 pi)^(1/3)``
  with ``V`` in mm^3 (voxel count x voxel volume at the scan's own spacing). Strata of ``r``:
  ``[0,5)``, ``[5,10)``, ``[10,15)``, ``[15,20)``, ``>=20`` mm. **Early stage** means an
  equivalent diameter ``2 r`` under 20 mm.
- A **false-positive component** is a 26-connected component of the prediction that overlaps no
  ground-truth lesion.
- **Patient level**: predicted components with an equivalent radius under ``min_radius_mm`` are
  dropped; the case is predicted positive when the remaining predicted volume exceeds
  ``threshold_mm3``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import cc3d
import numpy as np

from tumorsynth.organs.profile import (
    EARLY_STAGE_DIAMETER_MM,
    equivalent_diameter_mm,
    is_early_stage,
)

__all__ = [
    "CONNECTIVITY",
    "EARLY_STAGE_DIAMETER_MM",
    "RADIUS_STRATA_MM",
    "STRATUM_NAMES",
    "LesionMatch",
    "LesionRecord",
    "connected_components",
    "equivalent_radius_mm",
    "match_lesions",
    "patient_positive",
    "radius_stratum",
]

#: Lower edges of the equivalent-radius strata in mm; the last stratum is open (>= 20 mm).
RADIUS_STRATA_MM: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0)
#: Names of the strata, in the order of :data:`RADIUS_STRATA_MM`.
STRATUM_NAMES: tuple[str, ...] = ("[0,5)", "[5,10)", "[10,15)", "[15,20)", ">=20")
#: Voxel connectivity of lesions and predicted components (faces, edges and corners).
CONNECTIVITY: Literal[26] = 26


class LesionRecord(TypedDict):
    """One ground-truth lesion of a case.

    ``index`` counts from 1 in the order of the lesions' first voxel in C order; ``center_vox`` is
    the centroid in the scan's voxel indices (i, j, k).
    """

    index: int
    volume_ml: float
    radius_mm: float
    diameter_mm: float
    stratum: str
    early_stage: bool
    detected: bool
    center_vox: list[float]


@dataclass(frozen=True)
class LesionMatch:
    """What :func:`match_lesions` finds in one case.

    Attributes
    ----------
    lesions
        One record per ground-truth lesion.
    fp_components
        Predicted components that overlap no lesion.
    pred_volumes_mm3
        Volume of every predicted component in mm^3 (input of :func:`patient_positive`).
    """

    lesions: list[LesionRecord]
    fp_components: int
    pred_volumes_mm3: np.ndarray

    @property
    def detected(self) -> int:
        """Number of detected lesions."""
        return sum(1 for lesion in self.lesions if lesion["detected"])


def equivalent_radius_mm(volume_mm3: float | np.ndarray) -> float | np.ndarray:
    """Radius in mm of the sphere whose volume is ``volume_mm3`` (mm^3): half of
    :func:`tumorsynth.organs.equivalent_diameter_mm`, element-wise.

    Examples
    --------
    >>> round(float(equivalent_radius_mm(4 / 3 * np.pi * 8.0**3)), 6)
    8.0
    """
    diameters = np.vectorize(equivalent_diameter_mm, otypes=[float])(volume_mm3)
    return diameters / 2.0 if diameters.ndim else float(diameters) / 2.0


def radius_stratum(radius_mm: float) -> str:
    """Name of the equivalent-radius stratum of ``radius_mm`` (mm).

    Examples
    --------
    >>> radius_stratum(4.99), radius_stratum(5.0), radius_stratum(27.0)
    ('[0,5)', '[5,10)', '>=20')
    """
    position = int(np.searchsorted(RADIUS_STRATA_MM, float(radius_mm), side="right")) - 1
    return STRATUM_NAMES[max(position, 0)]


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Component labels (``1..count`` in the order of each component's first voxel in the
    array's memory order: C order for C-ordered arrays, Fortran order for nibabel's; 0 outside)
    and ``count`` of a boolean mask, with the lesions' :data:`CONNECTIVITY`.

    Examples
    --------
    >>> labels, count = connected_components(np.array([[[True, False, True]]]))
    >>> labels.tolist(), count
    ([[[1, 0, 2]]], 2)
    """
    # A border of background: cc3d 4.1 sizes its label table one too small for some masks only
    # a few voxels across (the (1, 1, 3) mask above raises "maximum length exception").
    labels, count = cc3d.connected_components(
        np.pad(np.asarray(mask, dtype=bool), 1), connectivity=CONNECTIVITY, return_N=True
    )
    return labels[1:-1, 1:-1, 1:-1], int(count)


def match_lesions(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    offset_vox: Sequence[int] = (0, 0, 0),
) -> LesionMatch:
    """Match ground-truth lesions to the prediction and count false-positive components.

    Parameters
    ----------
    pred, gt
        Boolean tumor masks on the same 3-D grid (a crop is fine: see ``offset_vox``).
    spacing_mm
        Voxel size in mm along each axis.
    offset_vox
        Voxel index of ``pred[0, 0, 0]`` in the full scan; added to the lesion centres so they
        are reported in the scan's own voxel indices.

    Returns
    -------
    LesionMatch
        Lesion records, false-positive component count and predicted component volumes.

    Examples
    --------
    >>> gt = np.zeros((20, 20, 20), bool); gt[2:6, 2:6, 2:6] = True; gt[12:16, 12:16, 12:16] = True
    >>> pred = np.zeros_like(gt); pred[3, 3, 3] = True; pred[0, 19, 0] = True
    >>> m = match_lesions(pred, gt, (1.0, 1.0, 1.0))
    >>> m.detected, len(m.lesions), m.fp_components
    (1, 2, 1)
    """
    voxel_mm3 = float(np.prod([float(s) for s in spacing_mm]))
    gt_labels, n_gt = connected_components(gt)
    pred_labels, n_pred = connected_components(pred)
    gt_counts = np.bincount(gt_labels.ravel(), minlength=n_gt + 1)
    pred_counts = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    # lesions hit by any predicted voxel; predicted components touching any lesion voxel
    hit = np.bincount(gt_labels[pred], minlength=n_gt + 1) > 0
    touching = np.bincount(pred_labels[gt], minlength=n_pred + 1) > 0
    lesions: list[LesionRecord] = []
    if n_gt:
        centroids = cc3d.statistics(gt_labels)["centroids"]
        offset = np.asarray(offset_vox, dtype=float)
        for index in range(1, n_gt + 1):
            volume_mm3 = float(gt_counts[index]) * voxel_mm3
            diameter = equivalent_diameter_mm(volume_mm3)
            radius = diameter / 2.0
            lesions.append(
                LesionRecord(
                    index=index,
                    volume_ml=volume_mm3 / 1000.0,
                    radius_mm=radius,
                    diameter_mm=diameter,
                    stratum=radius_stratum(radius),
                    early_stage=is_early_stage(diameter),
                    detected=bool(hit[index]),
                    center_vox=[round(float(c), 2) for c in centroids[index] + offset],
                )
            )
    fp_components = int(n_pred - np.count_nonzero(touching[1:]))
    return LesionMatch(lesions, fp_components, pred_counts[1:].astype(float) * voxel_mm3)


def patient_positive(
    pred_volumes_mm3: np.ndarray | Sequence[float],
    *,
    threshold_mm3: float = 30.0,
    min_radius_mm: float = 3.0,
) -> tuple[bool, float]:
    """Patient-level call from the volumes of the predicted components.

    Parameters
    ----------
    pred_volumes_mm3
        Volume of each predicted tumor component in mm^3.
    threshold_mm3
        The case is positive when the kept volume is strictly greater than this (mm^3).
    min_radius_mm
        Components whose equivalent radius is under this (mm) are dropped first.

    Returns
    -------
    tuple of (bool, float)
        Whether the case is predicted positive, and the kept predicted volume in mm^3.

    Examples
    --------
    >>> patient_positive([20.0, 200.0])  # 20 mm^3 is a 1.7 mm radius: dropped
    (True, 200.0)
    >>> patient_positive([150.0, 150.0], threshold_mm3=300.0)  # not more than 300 mm^3
    (False, 300.0)
    """
    volumes = np.asarray(pred_volumes_mm3, dtype=float)
    kept = volumes[equivalent_radius_mm(volumes) >= min_radius_mm]
    kept_mm3 = float(kept.sum())
    return bool(kept_mm3 > threshold_mm3), kept_mm3
