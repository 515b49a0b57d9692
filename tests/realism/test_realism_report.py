"""Realism report: the verdict rule on clear, null and doubtful cases; report.json and report.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tumorsynth.realism.c2st import C2STResult
from tumorsynth.realism.compare import FeatureDifference
from tumorsynth.realism.features import TumorFeatures
from tumorsynth.realism.report import realism_verdict, write_report
from tumorsynth.realism.separability import SeparabilityResult

N_REAL, N_SYNTH, N_GROUPS = 40, 40, 12


def result(
    feature_set: str,
    classifier: str = "logistic",
    auc: float = 0.5,
    interval: tuple[float, float] = (0.4, 0.6),
    p: float = 0.5,
    *,
    n: tuple[int, int, int] = (N_REAL, N_SYNTH, N_GROUPS),
) -> C2STResult:
    n_real, n_synth, n_groups = n
    return C2STResult(
        feature_set=feature_set, classifier=classifier, n_features=7, n_real=n_real,
        n_synthetic=n_synth, n_groups=n_groups, auc=auc, auc_low=interval[0],
        auc_high=interval[1], p_value=p, null_auc_mean=0.501, null_auc_95=0.587,
        top_features=(("tumor_std_hu", 0.41), ("ctx_noise_ratio", 0.22)),
        oof_score=tuple(np.linspace(0, 1, n_real + n_synth).tolist()), note="",
    )  # fmt: skip


def clear_case() -> list[C2STResult]:
    """Tumors separate (appearance AUC 0.88, p 0.001); baselines at chance."""
    return [
        result("all", "forest", 0.91, (0.85, 0.96), 0.001),
        result("appearance", "logistic", 0.88, (0.80, 0.95), 0.001),
        result("shape", "logistic", 0.62, (0.50, 0.74), 0.04),
        result("host_only", "logistic", 0.55, (0.43, 0.67), 0.31),
        result("scan_indicator", "logistic", 0.5, (0.5, 0.5), 1.0),
    ]


def null_case() -> list[C2STResult]:
    """Nothing separates: every interval includes 0.5."""
    return [
        result("all", "forest", 0.56, (0.44, 0.68), 0.21),
        result("appearance", "logistic", 0.52, (0.40, 0.64), 0.41),
        result("host_only", "logistic", 0.49, (0.37, 0.61), 0.55),
    ]


def test_verdict_clear_difference() -> None:
    verdict = realism_verdict(clear_case())
    assert verdict.label == "distinguishable"
    assert (verdict.feature_set, verdict.classifier, verdict.auc) == ("all", "forest", 0.91)
    assert "easily tells synthetic from real" in verdict.paragraph
    assert "AUC 0.91 [0.85, 0.96] on all features (forest, p = 0.001)" in verdict.paragraph
    assert "On appearance alone (no size or shape): AUC 0.88 [0.80, 0.95]" in verdict.paragraph
    assert "the difference is in the tumors, not the scans" in verdict.paragraph
    assert verdict.warnings == ()


def test_verdict_null_case() -> None:
    verdict = realism_verdict(null_case())
    assert verdict.label == "indistinguishable"
    assert verdict.paragraph.startswith("No classifier tells synthetic from real tumors better")
    assert "AUC 0.56 [0.44, 0.68]" in verdict.paragraph and "p = 0.210" in verdict.paragraph
    assert "not the scans" not in verdict.paragraph


def test_verdict_needs_interval_and_p() -> None:
    # interval above 0.5 but p 0.08; p 0.01 but interval touching 0.5: neither is a difference
    assert realism_verdict([result("appearance", auc=0.6, interval=(0.52, 0.7), p=0.08)]).label == (
        "indistinguishable"
    )
    assert realism_verdict([result("appearance", auc=0.6, interval=(0.5, 0.7), p=0.01)]).label == (
        "indistinguishable"
    )
    weak = realism_verdict([result("appearance", auc=0.6, interval=(0.52, 0.7), p=0.01)])
    assert weak.label == "distinguishable" and "weakly tells" in weak.paragraph


def test_verdict_warns_on_scan_baseline_few_samples_and_multiple_tests() -> None:
    scans = [
        *clear_case()[:3],
        result("scan_indicator", "forest", 0.83, (0.74, 0.91), 0.002),
    ]
    verdict = realism_verdict(scans)
    assert verdict.label == "distinguishable"
    assert any(
        "scan_indicator baseline separates the groups too (forest: AUC 0.83 [0.74, 0.91]" in w
        for w in verdict.warnings
    )
    assert "not the scans" not in verdict.paragraph and "the scans themselves" in verdict.paragraph

    few = realism_verdict([result("appearance", auc=0.7, interval=(0.3, 0.95), p=0.3, n=(2, 9, 1))])
    assert few.label == "inconclusive" and "not shown to differ" in few.paragraph
    assert few.warnings[0].startswith("Few samples: 2 real and 9 synthetic in 1 cross-validation")

    # p = 0.03 best of 3 tests: Bonferroni 0.09 -> tentative
    borderline = [
        result("appearance", auc=0.64, interval=(0.53, 0.75), p=0.03),
        result("context"), result("shape"),
    ]  # fmt: skip
    tentative = realism_verdict(borderline)
    assert tentative.label == "distinguishable"
    assert any("best of 3" in w and "corrected it is 0.090" in w for w in tentative.warnings)

    assert realism_verdict([]).label == "untested"
    assert realism_verdict([result("host_only")]).label == "untested"


def rows() -> list[TumorFeatures]:
    out = []
    for k in range(6):
        source = "real" if k < 2 else "synthetic"
        out.append(
            TumorFeatures(
                case=f"case{k}", group=f"scan{k % 3}", source=source,
                organ="kidney" if k == 5 else "liver", tumor=1, patch=0,
                volume_ml=1.5 * (k + 1), diameter_mm=14.2 + k, center_vox=(10.0, 10.0, 5.0),
                bbox=((5, 15), (5, 15), (3, 8)),
                values={"tumor_std_hu": 12.0 + k, "ctx_noise_ratio": math.nan},
            )
        )  # fmt: skip
    return out


def differences() -> list[FeatureDifference]:
    return [
        FeatureDifference(
            name="tumor_std_hu", ks=0.71, p_value=0.0004, median_real=21.4,
            median_synthetic=11.9, iqr_real=(18.2, 25.6), iqr_synthetic=(10.1, 13.3), effect=-1.9,
        ),
        FeatureDifference(
            name="ctx_noise_ratio", ks=0.12, p_value=0.93, median_real=1.42,
            median_synthetic=math.nan, iqr_real=(1.3, 1.7), iqr_synthetic=(math.nan, math.nan),
            effect=math.nan,
        ),
    ]  # fmt: skip


def separability() -> list[SeparabilityResult]:
    return [
        SeparabilityResult(
            classifier="svm", organs=("kidney", "liver"), accuracy=0.83, accuracy_std=0.05,
            precision={"kidney": 0.8, "liver": 0.86}, recall={"kidney": 0.75, "liver": 0.9},
            precision_std={"kidney": 0.1, "liver": 0.04}, recall_std={"kidney": 0.12, "liver": 0.03},
            confusion=((3, 1), (1, 9)),
        )
    ]  # fmt: skip


def test_write_report_files(tmp_path: Path) -> None:
    out = tmp_path / "study"
    figures = {"roc": Path("roc.png"), "montage": out / "montage.png"}
    md, js = write_report(
        out, rows=rows(), c2st=clear_case(), differences=differences(),
        sentences=["Synthetic interiors are smoother than the surrounding liver."],
        settings={"n_splits": 5, "seed": 7, "spacing_mm": [1.0, 1.0, 1.0], "bad": math.nan},
        separability=separability(), tsne=np.array([[0.5, 1.0], [2.0, math.nan]]),
        figures=figures, descriptions={"tumor_std_hu": "spread of the tumor's HU (HU)"},
    )  # fmt: skip
    assert (md, js) == (out / "report.md", out / "report.json")
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]

    text = js.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["settings"] == {"n_splits": 5, "seed": 7, "spacing_mm": [1, 1, 1], "bad": None}
    assert data["counts"]["real"] == {
        "samples": 2, "tumors": 2, "cases": 2, "groups": 2, "organs": {"liver": 2},
    }  # fmt: skip
    assert data["counts"]["synthetic"]["organs"] == {"kidney": 1, "liver": 3}
    assert data["verdict"]["label"] == "distinguishable"
    first = data["c2st"][0]
    assert (first["auc"], first["auc_low"], first["p_value"]) == (0.91, 0.85, 0.001)
    assert data["differences"][1]["median_synthetic"] is None
    assert data["separability"][0]["precision"] == {"kidney": 0.8, "liver": 0.86}
    assert data["tsne"] == [[0.5, 1.0], [2.0, None]]
    assert data["figures"] == {"roc": "roc.png", "montage": "montage.png"}
    assert [s["case"] for s in data["samples"]] == [f"case{k}" for k in range(6)]
    assert json.loads(json.dumps(data)) == data

    report = md.read_text(encoding="utf-8")
    for expected in (
        "- real: 2 tumors in 2 cases from 2 scans; per organ: liver 2",
        "- synthetic: 4 tumors in 4 cases from 3 scans; per organ: kidney 1, liver 3",
        "## Verdict: distinguishable",
        "| appearance | logistic | AUC 0.88 [0.80, 0.95] | 0.001 | 0.50 | 0.59 | 7 | 40 / 40 / 12 |",
        "| scan_indicator | logistic | AUC 0.50 [0.50, 0.50] | 1.000 |",
        "(impurity importance): tumor_std_hu (0.41), ctx_noise_ratio (0.22)",
        "- Synthetic interiors are smoother than the surrounding liver.",
        "| tumor_std_hu | 0.71 | 4.0e-04 | 21.4 [18.2, 25.6] | 11.9 [10.1, 13.3] | -1.9 "
        "| spread of the tumor's HU (HU) |",
        "| ctx_noise_ratio | 0.12 | 0.930 | 1.42 [1.3, 1.7] | n/a [n/a, n/a] | n/a |",
        "| svm | 0.83 ± 0.05 | 0.80 ± 0.10 | 0.75 ± 0.12 | 0.86 ± 0.04 | 0.90 ± 0.03 |",
        "![roc](roc.png)",
        "![montage](montage.png)",
        '"bad": null',
    ):
        assert expected in report, expected


def test_write_report_null_case_and_no_extras(tmp_path: Path) -> None:
    md, js = write_report(
        tmp_path, rows=rows(), c2st=null_case(), differences=[], sentences=[], settings={}
    )
    report = md.read_text(encoding="utf-8")
    assert "## Verdict: indistinguishable" in report
    assert "No classifier tells synthetic from real tumors better than chance" in report
    assert "Organ separability" not in report and "## Figures" not in report
    assert json.loads(js.read_text(encoding="utf-8"))["tsne"] is None

    few = [result("appearance", auc=0.7, interval=(0.3, 0.95), p=0.3, n=(2, 9, 1))]
    md, js = write_report(
        tmp_path, rows=rows(), c2st=few, differences=[], sentences=[], settings={}
    )
    report = md.read_text(encoding="utf-8")
    assert "## Verdict: inconclusive" in report
    assert "> **Warning.** Few samples: 2 real and 9 synthetic in 1 cross-validation" in report
    assert json.loads(js.read_text(encoding="utf-8"))["verdict"]["warnings"][0].startswith(
        "Few samples"
    )


def test_write_report_leaves_nothing_on_failure(tmp_path: Path) -> None:
    class Broken(FeatureDifference):
        def to_dict(self) -> dict[str, object]:
            raise RuntimeError("boom")

    broken = Broken(**{**differences()[0].to_dict(), "iqr_real": (1.0, 2.0),
                       "iqr_synthetic": (1.0, 2.0)})  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        write_report(
            tmp_path / "new", rows=rows(), c2st=clear_case(), differences=[broken],
            sentences=[], settings={},
        )  # fmt: skip
    assert not (tmp_path / "new").exists()
