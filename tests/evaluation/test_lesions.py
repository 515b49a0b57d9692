"""Lesion matching, size strata, false-positive components and the patient-level call."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapes_for_tests import ball

from tumorsynth.evaluation.lesions import (
    STRATUM_NAMES,
    equivalent_radius_mm,
    match_lesions,
    patient_positive,
    radius_stratum,
)
from tumorsynth.evaluation.metrics import evaluate_case
from tumorsynth.evaluation.summary import summarize_cases


def test_equivalent_radius_and_strata_edges() -> None:
    assert float(equivalent_radius_mm(4 / 3 * math.pi * 1000.0)) == pytest.approx(10.0)
    assert [radius_stratum(r) for r in (0.0, 4.999, 5.0, 10.0, 14.9, 15.0, 19.99, 20.0, 80)] == [
        "[0,5)", "[0,5)", "[5,10)", "[10,15)", "[10,15)", "[15,20)", "[15,20)", ">=20", ">=20",
    ]  # fmt: skip


def test_missed_small_lesion_counts_in_its_stratum() -> None:
    """A 12 mm lesion is found, a 3 mm one (early stage) is missed."""
    spacing = (0.8, 0.8, 1.5)
    shape = (70, 50, 30)
    big = ball(shape, (18.0, 20.0, 22.0), 12.0, spacing)
    small = ball(shape, (45.0, 20.0, 22.0), 3.0, spacing)
    gt = np.where(big, 2, np.where(small, 2, 0)).astype(np.uint8)
    pred = np.where(big, 2, 0).astype(np.uint8)
    case = evaluate_case(pred, gt, spacing, tumor_ids_pred=(2,), tumor_ids_gt=(2,))
    assert case.n_lesions == 2 and case.detected == 1 and case.fp_components == 0
    by_radius = sorted(case.lesions, key=lambda lesion: lesion["radius_mm"])
    small_lesion, big_lesion = by_radius
    assert small_lesion["radius_mm"] == pytest.approx(3.0, rel=0.1)
    assert small_lesion["stratum"] == "[0,5)" and small_lesion["early_stage"]
    assert not small_lesion["detected"]
    assert big_lesion["volume_ml"] == pytest.approx(4 / 3 * math.pi * 12.0**3 / 1000, rel=0.03)
    assert big_lesion["stratum"] == "[10,15)" and not big_lesion["early_stage"]
    assert big_lesion["detected"]
    center_mm = np.array(big_lesion["center_vox"]) * spacing
    assert center_mm == pytest.approx([18.0, 20.0, 22.0], abs=0.3)

    s = summarize_cases([case], n_bootstrap=0)
    assert s.lesion_sensitivity.value == 0.5
    assert s.lesion_sensitivity_by_stratum["[0,5)"].value == 0.0
    assert s.lesion_sensitivity_by_stratum["[10,15)"].value == 1.0
    assert all(math.isnan(s.lesion_sensitivity_by_stratum[k].value) for k in ("[5,10)", ">=20"))
    assert s.n_lesions_by_stratum == dict(zip(STRATUM_NAMES, [1, 0, 1, 0, 0]))
    assert s.early_stage_sensitivity.value == 0.0 and s.n_early_stage_lesions == 1


def test_lesions_are_26_connected_and_overlap_means_shared_voxels() -> None:
    gt = np.zeros((12, 12, 12), bool)
    gt[2, 2, 2] = gt[3, 3, 3] = True  # corner neighbours: one lesion
    gt[8:10, 8:10, 8:10] = True
    pred = np.zeros_like(gt)
    pred[3, 3, 3] = True  # overlaps lesion 1
    pred[7, 7, 7] = True  # touches lesion 2 only by a corner: no overlap, a false positive
    pred[0, 11, 0] = True  # far away: a false positive
    pred[11, 0, 11] = pred[10, 1, 10] = True  # one 26-connected false positive
    match = match_lesions(pred, gt, (1.0, 1.0, 1.0))
    assert len(match.lesions) == 2
    assert [lesion["detected"] for lesion in match.lesions] == [True, False]
    assert match.fp_components == 3
    assert sorted(match.pred_volumes_mm3.tolist()) == [1.0, 1.0, 1.0, 2.0]


def test_a_component_overlapping_two_lesions_is_no_false_positive() -> None:
    gt = np.zeros((10, 10, 10), bool)
    gt[1:3, 1:3, 1:3] = gt[6:8, 6:8, 6:8] = True
    pred = np.zeros_like(gt)
    pred[2:8, 2, 2] = pred[7, 2:8, 2] = pred[7, 7, 2:8] = True  # a bridge through both
    match = match_lesions(pred, gt, (1.0, 1.0, 1.0))
    assert match.detected == 2 and match.fp_components == 0


def test_patient_level_drops_components_under_min_radius() -> None:
    spacing = (1.0, 1.0, 1.0)
    pred = np.zeros((40, 40, 40), np.uint8)
    for i in range(6):  # six 2x2x2 specks, 8 mm^3 each (radius 1.24 mm): 48 mm^3 in all
        pred[2 + 6 * i : 4 + 6 * i, 2:4, 2:4] = 2
    gt = np.zeros_like(pred)
    ids = {"tumor_ids_pred": (2,), "tumor_ids_gt": (2,)}
    specks = evaluate_case(pred, gt, spacing, **ids)
    assert specks.fp_components == 6 and specks.pred_volume_ml == pytest.approx(0.048)
    assert not specks.predicted_positive and specks.kept_pred_volume_mm3 == 0.0
    assert evaluate_case(pred, gt, spacing, min_radius_mm=1.0, **ids).predicted_positive

    pred[20:25, 20:25, 20:25] = 2  # 125 mm^3, radius 3.10 mm: kept
    lump = evaluate_case(pred, gt, spacing, **ids)
    assert lump.predicted_positive and lump.kept_pred_volume_mm3 == 125.0
    strict = evaluate_case(pred, gt, spacing, patient_threshold_mm3=125.0, **ids)
    assert not strict.predicted_positive

    controls = [specks, lump, evaluate_case(gt, gt, spacing, **ids)]
    specificity = summarize_cases(controls, n_bootstrap=0).patient_specificity
    assert specificity.value == pytest.approx(2 / 3)


def test_patient_positive_threshold_is_strict() -> None:
    volume_r3 = 4 / 3 * math.pi * 27.0  # exactly a 3 mm radius: kept
    assert patient_positive([volume_r3], threshold_mm3=volume_r3) == (False, volume_r3)
    assert patient_positive([volume_r3], threshold_mm3=30.0) == (True, volume_r3)
    assert patient_positive([], threshold_mm3=0.0) == (False, 0.0)
