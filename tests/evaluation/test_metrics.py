"""DSC, NSD and one-case evaluation against values worked out by hand on constructed volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapes_for_tests import ball
from shared_data import require_module

from tumorsynth.errors import InputError
from tumorsynth.evaluation.metrics import (
    dice,
    evaluate_case,
    normalized_surface_dice,
    surface_voxels,
    tumor_mask,
)


def cube(shape: tuple[int, int, int], start: int, size: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[start : start + size, start : start + size, start : start + size] = True
    return mask


def lens_dice(radius: float, distance: float) -> float:
    """DSC of two equal spheres whose centres are ``distance`` apart (lens volume / sphere)."""
    lens = math.pi * (4 * radius + distance) * (2 * radius - distance) ** 2 / 12
    return lens / (4 / 3 * math.pi * radius**3)


# --- masks, DSC, surfaces ------------------------------------------------------------------------


def test_tumor_mask_selects_ids_of_any_dtype() -> None:
    label = np.array([0, 1, 2, 3, 6, 6], np.uint8)
    assert tumor_mask(label, (2,)).tolist() == [False, False, True, False, False, False]
    assert tumor_mask(label, (2, 6)).sum() == 3
    assert tumor_mask(label.astype(np.int32), (2, 6)).sum() == 3
    assert tumor_mask(label.astype(bool), (1,)).sum() == 5
    with pytest.raises(InputError, match="at least one tumor label id"):
        tumor_mask(label, ())


def test_dice_by_hand() -> None:
    a, b = np.zeros(10, bool), np.zeros(10, bool)
    a[:4], b[2:8] = True, True  # overlap 2, sizes 4 and 6
    assert dice(a, b) == pytest.approx(2 * 2 / 10)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros(10, bool)) == 0.0
    assert dice(np.zeros(10, bool), np.zeros(10, bool)) == 1.0


def test_surface_is_six_neighbour_boundary_and_scan_edge() -> None:
    inner = cube((7, 7, 7), 1, 5)
    assert surface_voxels(inner).sum() == 5**3 - 3**3
    full = np.ones((4, 4, 4), bool)  # touching the scan's edge on every side: all surface
    assert surface_voxels(full).sum() == 4**3 - 2**3


@pytest.mark.parametrize(
    ("spacing", "shift_vox", "axis"),
    [((1.0, 1.0, 1.0), 5, 0), ((0.8, 0.8, 2.0), 2, 2)],
)
def test_shifted_spheres_match_analytic_dice(
    spacing: tuple[float, float, float], shift_vox: int, axis: int
) -> None:
    radius, shape = 12.0, (48, 48, 24) if spacing[2] > 1 else (40, 40, 40)
    center = tuple(n * s / 2 for n, s in zip(shape, spacing))
    moved = list(center)
    moved[axis] += shift_vox * spacing[axis]
    gt = ball(shape, center, radius, spacing)
    pred = ball(shape, tuple(moved), radius, spacing)
    expected = lens_dice(radius, shift_vox * spacing[axis])
    assert dice(pred, gt) == pytest.approx(expected, abs=0.02)
    result = evaluate_case(pred, gt, spacing, tumor_ids_pred=(1,), tumor_ids_gt=(1,))
    assert result.dsc == pytest.approx(dice(pred, gt))
    assert result.detected == 1 and result.fp_components == 0


# --- NSD ------------------------------------------------------------------------------------------


def test_nsd_one_voxel_z_shift_depends_on_spacing() -> None:
    """A 6^3 cube moved one voxel along z.

    Each cube has 6^3 - 4^3 = 152 surface voxels. At 1 mm (and at 2 mm, exactly the tolerance)
    every surface voxel is within 2 mm of the other surface. At 3 mm the 36 voxels of the
    leading cap of each cube are 3 mm from the other surface (all other surface voxels lie on the
    other cube's sides or within 2 mm of them in-plane): NSD = (304 - 72) / 304.
    """
    gt = cube((12, 12, 12), 3, 6)
    pred = np.roll(gt, 1, axis=2)
    assert normalized_surface_dice(pred, gt, (1.0, 1.0, 1.0), 2.0) == 1.0
    assert normalized_surface_dice(pred, gt, (1.0, 1.0, 2.0), 2.0) == 1.0  # <= tolerance
    assert normalized_surface_dice(pred, gt, (1.0, 1.0, 3.0), 2.0) == pytest.approx(232 / 304)
    assert normalized_surface_dice(pred, gt, (1.0, 1.0, 3.0), 3.0) == 1.0
    # the same shift along a fine in-plane axis is harmless at 3 mm slices
    assert normalized_surface_dice(np.roll(gt, 1, axis=0), gt, (1.0, 1.0, 3.0), 2.0) == 1.0


def test_nsd_empty_conventions() -> None:
    empty, blob = np.zeros((8, 8, 8), bool), cube((8, 8, 8), 2, 3)
    assert normalized_surface_dice(empty, empty, (1, 1, 1)) == 1.0
    assert normalized_surface_dice(blob, empty, (1, 1, 1)) == 0.0
    assert normalized_surface_dice(empty, blob, (1, 1, 1)) == 0.0


def test_nsd_is_local_to_the_lesions() -> None:
    """Padding the scan with empty space changes nothing (the crop follows the lesions)."""
    gt = ball((20, 20, 12), (10, 10, 12), 6.0, (1.0, 1.0, 2.0))
    pred = np.roll(gt, 4, axis=0)
    small = normalized_surface_dice(pred, gt, (1.0, 1.0, 2.0))
    pad = ((30, 40), (5, 60), (20, 3))
    large = normalized_surface_dice(np.pad(pred, pad), np.pad(gt, pad), (1.0, 1.0, 2.0))
    assert large == small and 0 < small < 1


def _blob(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    from scipy import ndimage

    noise = np.random.default_rng(seed).standard_normal(shape)
    smooth = ndimage.gaussian_filter(noise, sigma=(3.0, 3.0, 1.5))
    return smooth > np.quantile(smooth, 0.8)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecation notice
@pytest.mark.parametrize("spacing", [(0.8, 1.1, 2.5), (0.7, 0.7, 3.0)])
def test_nsd_agrees_with_monai(spacing: tuple[float, float, float]) -> None:
    """Same definition as MONAI without sub-voxels: 6-neighbour edges, distance <= tolerance."""
    torch = require_module("torch")
    monai_metrics = require_module("monai.metrics")
    gt = _blob((40, 36, 18), 1)
    pred = gt.copy()
    pred[2:, :, :] = gt[:-2, :, :]  # shifted 2 voxels along x, then perturbed
    pred |= _blob((40, 36, 18), 2) & _blob((40, 36, 18), 3)

    def one_hot(mask: np.ndarray) -> object:
        return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float32))

    expected = monai_metrics.compute_surface_dice(
        one_hot(pred),
        one_hot(gt),
        class_thresholds=[2.0],
        include_background=False,
        spacing=list(spacing),
    )
    ours = normalized_surface_dice(pred, gt, spacing, 2.0)
    assert 0.2 < ours < 0.99
    assert ours == pytest.approx(float(expected[0, 0]), abs=1e-6)


# --- evaluate_case: empty cases ---------------------------------------------------------------


def test_empty_prediction_and_empty_ground_truth() -> None:
    gt = np.zeros((20, 20, 20), np.uint8)
    gt[5:10, 5:10, 5:10] = 2
    gt[0:3, 0:3, 0:3] = 1  # organ, not tumor
    empty = np.zeros_like(gt)
    ids = {"tumor_ids_pred": (2,), "tumor_ids_gt": (2,)}

    missed = evaluate_case(empty, gt, (1, 1, 1), **ids)
    assert (missed.dsc, missed.nsd, missed.has_tumor, missed.detected) == (0.0, 0.0, True, 0)
    assert missed.n_lesions == 1 and not missed.predicted_positive

    control = evaluate_case(empty, empty, (1, 1, 1), **ids)
    assert (control.dsc, control.nsd, control.has_tumor) == (1.0, 1.0, False)
    assert control.lesions == [] and not control.false_positive_case

    false_alarm = evaluate_case(gt, empty, (1, 1, 1), **ids)
    assert (false_alarm.dsc, false_alarm.nsd, false_alarm.has_tumor) == (0.0, 0.0, False)
    assert false_alarm.fp_components == 1 and false_alarm.false_positive_case
    assert false_alarm.predicted_positive  # 125 mm^3 in one component of radius 3.1 mm


def test_evaluate_case_reports_volumes_and_refuses_bad_input() -> None:
    gt = cube((20, 20, 20), 4, 5)
    result = evaluate_case(gt, gt, (0.5, 0.5, 2.0), tumor_ids_pred=(1,), tumor_ids_gt=(1,))
    assert result.gt_volume_ml == pytest.approx(125 * 0.5 / 1000)
    assert result.lesions[0]["volume_ml"] == pytest.approx(125 * 0.5 / 1000)
    with pytest.raises(InputError, match="does not match"):
        evaluate_case(gt[:-1], gt, (1, 1, 1), tumor_ids_pred=(1,), tumor_ids_gt=(1,))
    with pytest.raises(InputError, match="spacing_mm"):
        evaluate_case(gt, gt, (1, 0, 1), tumor_ids_pred=(1,), tumor_ids_gt=(1,))
