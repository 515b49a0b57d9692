"""Pooling cases into a summary: means over tumor cases, pooled sensitivities, seeded bootstrap."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tumorsynth.evaluation.metrics import CaseEvaluation
from tumorsynth.evaluation.summary import summarize_cases


def _case(case_id: str, dsc: float, *, tumor: bool = True, positive: bool = True) -> CaseEvaluation:
    lesion = {
        "index": 1, "volume_ml": 1.0, "radius_mm": 6.2, "diameter_mm": 12.4, "stratum": "[5,10)",
        "early_stage": True, "detected": dsc > 0, "center_vox": [0.0, 0.0, 0.0],
    }  # fmt: skip
    return CaseEvaluation(
        case_id, dsc, dsc, tumor, [lesion] if tumor else [], int(tumor and dsc > 0),
        fp_components=0 if positive == tumor else 2, predicted_positive=positive,
    )  # fmt: skip


def test_summary_by_hand_excludes_controls_from_means() -> None:
    cases = [
        _case("a", 0.8),
        _case("b", 0.0, positive=False),  # missed
        _case("c", 0.6),
        _case("d", 1.0, tumor=False, positive=False),  # correct control
        _case("e", 0.0, tumor=False, positive=True),  # false-positive control
    ]
    s = summarize_cases(cases, n_bootstrap=0)
    assert s.dsc_mean.value == pytest.approx((0.8 + 0.0 + 0.6) / 3)
    assert s.nsd_mean.value == pytest.approx(s.dsc_mean.value)
    assert (s.n_cases, s.n_tumor_cases, s.n_controls) == (5, 3, 2)
    assert s.lesion_sensitivity.value == pytest.approx(2 / 3)
    assert s.lesion_sensitivity_by_stratum["[5,10)"].value == pytest.approx(2 / 3)
    assert math.isnan(s.lesion_sensitivity_by_stratum[">=20"].value)
    assert s.early_stage_sensitivity.value == pytest.approx(2 / 3)
    assert s.patient_sensitivity.value == pytest.approx(2 / 3)
    assert s.patient_specificity.value == pytest.approx(1 / 2)
    assert s.fp_per_case.value == pytest.approx((2 + 2) / 5)
    assert math.isnan(s.dsc_mean.ci95[0])


def test_bootstrap_is_seeded_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(7)
    cases = [_case(f"t{i}", float(d)) for i, d in enumerate(rng.uniform(0.3, 0.95, 25))]
    cases += [_case(f"m{i}", 0.0, positive=False) for i in range(5)]
    cases += [_case(f"c{i}", 1.0, tumor=False, positive=i < 3) for i in range(12)]
    first = summarize_cases(cases, n_bootstrap=500, seed=3)
    assert json.dumps(first.to_dict()) == json.dumps(
        summarize_cases(cases, n_bootstrap=500, seed=3).to_dict()
    )
    other_seed = summarize_cases(cases, n_bootstrap=500, seed=4)
    assert first.to_dict()["ci95"] != other_seed.to_dict()["ci95"]
    for name in (
        "dsc_mean", "nsd_mean", "lesion_sensitivity", "patient_sensitivity", "patient_specificity",
    ):  # fmt: skip
        low, high = getattr(first, name).ci95
        assert low <= getattr(first, name).value <= high and low < high, name
    stratum = first.lesion_sensitivity_by_stratum["[5,10)"]
    assert stratum.ci95[0] <= stratum.value <= stratum.ci95[1]


def test_to_dict_keeps_the_layout_of_report_json() -> None:
    summary = summarize_cases([_case("a", 0.8), _case("b", 1.0, tumor=False)], n_bootstrap=10)
    data = summary.to_dict()
    assert list(data) == [
        "n_cases", "n_tumor_cases", "n_controls", "n_false_positive_cases", "n_lesions",
        "n_detected", "n_lesions_by_stratum", "n_detected_by_stratum", "n_early_stage_lesions",
        "n_early_stage_detected", "dsc_median", "dsc_mean", "nsd_mean", "lesion_sensitivity",
        "early_stage_sensitivity", "fp_per_case", "patient_sensitivity", "patient_specificity",
        "lesion_sensitivity_by_stratum", "ci95", "bootstrap",
    ]  # fmt: skip
    ci95 = data["ci95"]
    assert isinstance(ci95, dict) and list(ci95) == list(data)[11:19]  # pooled, by stratum
    assert ci95["dsc_mean"] == list(summary.dsc_mean.ci95)
    assert data["bootstrap"] == {"n_resamples": 10, "seed": 0, "method": "percentile"}
