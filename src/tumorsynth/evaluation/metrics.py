"""Per-case segmentation metrics: Dice (DSC), normalized surface Dice (NSD), one-case evaluation.

Everything is in physical units at the scan's own spacing (never resampled to 1 mm). NSD follows
Nikolov et al. (2021) with voxel surfaces, as MONAI's ``compute_surface_dice`` does without
sub-voxels: the surface of a mask is its voxels with at least one of the 6 face neighbours outside
the mask (beyond the scan's edge counts as outside); a surface voxel is correct when its Euclidean
distance in mm to the other mask's surface is at most the tolerance, and

    NSD = (correct pred surface voxels + correct gt surface voxels) / (all surface voxels).

Distances are exact Euclidean distance transforms (``edt``, anisotropic) computed only on the
bounding box of ``pred | gt`` grown by the tolerance plus one voxel, so the cost follows the
lesions, not the scan.

Why not MONAI's ``compute_surface_dice``: it gives the same value (a test checks it), but it works
on full-volume one-hot tensors and needs torch. Measured on IRCAD 1.17 (512 x 512 x 119, the two
tumors peeled by one voxel, CPU): NSD 0.995165 from both, 0.29 s here against 4.9 s in MONAI.

Empty masks (the convention of the whole evaluation package):

=============  ==============  ====================================================
ground truth   prediction      DSC = NSD
=============  ==============  ====================================================
empty          empty           1.0 (a correct control; left out of the means)
empty          not empty       0.0 (a control with a false-positive prediction)
not empty      empty           0.0 (a missed case)
=============  ==============  ====================================================

``dsc_mean`` and ``nsd_mean`` of a report are taken over the cases that contain tumor only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import edt
import numpy as np

from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.evaluation.lesions import LesionRecord, match_lesions, patient_positive
from tumorsynth.io.label_maps import label_mask

__all__ = [
    "EMPTY_CASES_RULE",
    "CaseEvaluation",
    "dice",
    "evaluate_case",
    "normalized_surface_dice",
    "surface_voxels",
    "tumor_mask",
]

#: How cases without tumor in the ground truth or the prediction are counted (the table above, in
#: words; recorded in report.json).
EMPTY_CASES_RULE = (
    "gt empty and pred empty: dsc = nsd = 1, a correct control, left out of dsc_mean/nsd_mean; "
    "gt empty and pred not empty: dsc = nsd = 0, a false-positive case, left out of the means; "
    "gt not empty and pred empty: dsc = nsd = 0, in the means. "
    "dsc_mean and nsd_mean are over cases whose ground truth contains tumor."
)

#: Float32 distances that should equal the tolerance exactly may round a hair above it.
_DISTANCE_SLACK = 1e-6


@dataclass
class CaseEvaluation:
    """Metrics of one case for one tumor class.

    Attributes
    ----------
    case_id
        The case's id (file name without ``.nii.gz``).
    dsc, nsd
        Dice and normalized surface Dice in [0, 1] (see the module's table for empty masks).
    has_tumor
        Whether the ground truth contains tumor (False: a control case).
    lesions
        One :class:`~tumorsynth.evaluation.lesions.LesionRecord` per ground-truth lesion.
    detected
        Number of detected lesions.
    fp_components
        Predicted components that overlap no ground-truth lesion.
    predicted_positive
        Patient-level call (kept predicted volume above the threshold).
    gt_volume_ml, pred_volume_ml
        Tumor volumes in mL.
    kept_pred_volume_mm3
        Predicted volume in mm^3 after dropping components under the minimum radius.
    spacing_mm
        Voxel size used, in mm.
    """

    case_id: str
    dsc: float
    nsd: float
    has_tumor: bool
    lesions: list[LesionRecord] = field(default_factory=list)
    detected: int = 0
    fp_components: int = 0
    predicted_positive: bool = False
    gt_volume_ml: float = 0.0
    pred_volume_ml: float = 0.0
    kept_pred_volume_mm3: float = 0.0
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def n_lesions(self) -> int:
        return len(self.lesions)

    @property
    def false_positive_case(self) -> bool:
        """A control (no tumor in the ground truth) with predicted tumor voxels."""
        return not self.has_tumor and self.pred_volume_ml > 0

    def to_json(self) -> dict[str, object]:
        """Plain-JSON mapping (NaN stays a float; the report writer turns it into null)."""
        data = asdict(self)
        data["n_lesions"] = self.n_lesions
        data["false_positive_case"] = self.false_positive_case
        data["spacing_mm"] = [float(s) for s in self.spacing_mm]
        return data


def tumor_mask(label: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels of ``label`` whose id is in ``ids``.

    A boolean ``label`` is already a mask and is returned as a copy, whatever ``ids`` says.

    Examples
    --------
    >>> tumor_mask(np.array([0, 1, 2, 6], np.uint8), (2, 6)).tolist()
    [False, False, True, True]
    """
    if not len(ids):
        raise InputError("tumor ids", "expected at least one tumor label id, found none")
    return label_mask(label, ids)


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice similarity coefficient ``2 |P & G| / (|P| + |G|)`` of two boolean masks.

    Both empty gives 1.0 (see the module's table).

    Examples
    --------
    >>> a = np.zeros(10, bool); a[:4] = True
    >>> b = np.zeros(10, bool); b[2:6] = True
    >>> dice(a, b)
    0.5
    """
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(gt))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & gt)) / total


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one of their 6 face neighbours outside it.

    Voxels on the array's border count as surface (outside the array is outside the mask), as
    with ``scipy.ndimage.binary_erosion`` and its default zero border.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 1:4] = True
    >>> int(surface_voxels(m).sum())  # a 3x3x3 cube: all but the centre
    26
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.flags.f_contiguous and not mask.flags.c_contiguous:
        return surface_voxels(mask.T).T  # symmetric in the axes; numpy is fast in memory order
    interior = mask.copy()
    for axis in range(3):
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(None, -1), slice(1, None)
        interior[tuple(high)] &= mask[tuple(low)]  # neighbour at index - 1 is inside
        interior[tuple(low)] &= mask[tuple(high)]  # neighbour at index + 1 is inside
        edge = [slice(None)] * 3
        for end in (0, -1):  # the scan's edge: the outside neighbour is not in the mask
            edge[axis] = end  # type: ignore[call-overload]
            interior[tuple(edge)] = False
    return mask & ~interior


def _crop_union(
    pred: np.ndarray, gt: np.ndarray, margin_vox: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]] | None:
    """Crop both masks to the bounding box of their union grown by ``margin_vox``; None if empty."""
    box = Box.of_mask(pred | gt, margin_vox)
    if box is None:
        return None
    return np.ascontiguousarray(pred[box.slices]), np.ascontiguousarray(gt[box.slices]), box.origin


def _margin_vox(spacing_mm: Sequence[float], tolerance_mm: float) -> tuple[int, int, int]:
    return tuple(math.ceil(tolerance_mm / float(s)) + 1 for s in spacing_mm)  # type: ignore[return-value]


def _check_spacing(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(s) for s in spacing_mm)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise InputError("spacing_mm", f"expected three voxel sizes > 0 mm, found {spacing_mm!r}")
    return values


def normalized_surface_dice(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing_mm: Sequence[float],
    tolerance_mm: float = 2.0,
) -> float:
    """Normalized surface Dice of two boolean masks at ``tolerance_mm``.

    Parameters
    ----------
    pred, gt
        Boolean masks on the same 3-D grid.
    spacing_mm
        Voxel size in mm along each axis (anisotropic spacing is handled exactly).
    tolerance_mm
        Distance in mm within which a surface voxel counts as correct (inclusive).

    Returns
    -------
    float
        NSD in [0, 1]; 1.0 when both are empty, 0.0 when exactly one is.

    Examples
    --------
    >>> g = np.zeros((12, 12, 12), bool); g[3:9, 3:9, 3:9] = True
    >>> p = np.roll(g, 1, axis=2)
    >>> normalized_surface_dice(p, g, (1, 1, 1))  # 1 mm shift, within 2 mm
    1.0
    >>> round(normalized_surface_dice(p, g, (1, 1, 3)), 3)  # 3 mm shift: the z caps miss
    0.763
    """
    spacing = _check_spacing(spacing_mm)
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    cropped = _crop_union(pred, gt, _margin_vox(spacing, tolerance_mm))
    if cropped is None:
        return 1.0
    pred, gt, _ = cropped
    pred_surface, gt_surface = surface_voxels(pred), surface_voxels(gt)
    n_pred, n_gt = int(pred_surface.sum()), int(gt_surface.sum())
    if n_pred == 0 or n_gt == 0:
        return 0.0
    limit = tolerance_mm + _DISTANCE_SLACK
    to_gt = edt.edt(np.ascontiguousarray(~gt_surface), anisotropy=spacing, black_border=False)
    to_pred = edt.edt(np.ascontiguousarray(~pred_surface), anisotropy=spacing, black_border=False)
    correct = int(np.count_nonzero(to_gt[pred_surface] <= limit)) + int(
        np.count_nonzero(to_pred[gt_surface] <= limit)
    )
    return correct / (n_pred + n_gt)


def evaluate_case(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    tumor_ids_pred: Sequence[int],
    tumor_ids_gt: Sequence[int],
    nsd_tolerance_mm: float = 2.0,
    patient_threshold_mm3: float = 30.0,
    min_radius_mm: float = 3.0,
    case_id: str = "case",
) -> CaseEvaluation:
    """Evaluate one predicted label map against its ground truth for one tumor class.

    Parameters
    ----------
    pred, gt
        Label maps (or boolean masks) on the same 3-D grid.
    spacing_mm
        Voxel size in mm along each voxel axis, e.g. ``spacing_from_affine(affine)``.
    tumor_ids_pred, tumor_ids_gt
        Label ids that make up the tumor class in each map (a boolean array is taken as the
        tumor mask itself).
    nsd_tolerance_mm
        NSD tolerance in mm.
    patient_threshold_mm3, min_radius_mm
        Patient-level call: see :func:`~tumorsynth.evaluation.lesions.patient_positive`.
    case_id
        Name used in reports.

    Returns
    -------
    CaseEvaluation

    Examples
    --------
    >>> gt = np.zeros((30, 30, 30), np.uint8); gt[5:15, 5:15, 5:15] = 2
    >>> r = evaluate_case(gt, gt, (1.0, 1.0, 2.0), tumor_ids_pred=(2,), tumor_ids_gt=(2,))
    >>> r.dsc, r.nsd, r.detected, r.lesions[0]["volume_ml"]
    (1.0, 1.0, 1, 2.0)
    """
    spacing = _check_spacing(spacing_mm)
    if pred.shape != gt.shape:
        raise InputError(
            case_id, f"prediction shape {pred.shape} does not match ground truth {gt.shape}"
        )
    if not nsd_tolerance_mm >= 0:
        raise InputError("nsd_tolerance_mm", f"expected >= 0 mm, found {nsd_tolerance_mm}")
    pred_mask, gt_mask = tumor_mask(pred, tumor_ids_pred), tumor_mask(gt, tumor_ids_gt)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    cropped = _crop_union(pred_mask, gt_mask, _margin_vox(spacing, nsd_tolerance_mm))
    if cropped is None:  # a control with an empty prediction
        return CaseEvaluation(case_id, 1.0, 1.0, False, spacing_mm=spacing)
    pred_mask, gt_mask, origin = cropped
    match = match_lesions(pred_mask, gt_mask, spacing, offset_vox=origin)
    positive, kept_mm3 = patient_positive(
        match.pred_volumes_mm3, threshold_mm3=patient_threshold_mm3, min_radius_mm=min_radius_mm
    )
    return CaseEvaluation(
        case_id=case_id,
        dsc=dice(pred_mask, gt_mask),
        nsd=normalized_surface_dice(pred_mask, gt_mask, spacing, nsd_tolerance_mm),
        has_tumor=bool(gt_mask.any()),
        lesions=match.lesions,
        detected=match.detected,
        fp_components=match.fp_components,
        predicted_positive=positive,
        gt_volume_ml=int(np.count_nonzero(gt_mask)) * voxel_ml,
        pred_volume_ml=int(np.count_nonzero(pred_mask)) * voxel_ml,
        kept_pred_volume_mm3=kept_mm3,
        spacing_mm=spacing,
    )
