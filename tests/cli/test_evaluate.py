"""``tumorsynth evaluate`` through the real entry point, in-process, on small NIfTI folders."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_runner import cli

SPACING = (1.0, 1.0, 2.5)
SHAPE = (40, 40, 12)


def save(path: Path, array: np.ndarray, spacing: tuple[float, ...] = SPACING) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), np.diag([*spacing, 1.0])), str(path))


def labels(tumor_value: int, *blocks: tuple[slice, ...], organ_value: int = 1) -> np.ndarray:
    array = np.zeros(SHAPE, np.uint8)
    array[4:36, 4:36, 1:11] = organ_value
    for block in blocks:
        array[block] = tumor_value
    return array


TUMOR = (slice(10, 20), slice(10, 20), slice(3, 7))
SHIFTED = (slice(12, 22), slice(10, 20), slice(3, 7))


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    """KiTS ground truth (1 kidney, 2 tumor), predictions in tumorsynth labels (5, 6)."""
    gt, pred = tmp_path / "gt" / "labelsTs", tmp_path / "pred"
    save(gt / "k1.nii.gz", labels(2, TUMOR))
    save(pred / "k1.nii.gz", labels(6, SHIFTED, organ_value=5))
    save(gt / "k2.nii.gz", labels(2))
    save(pred / "k2.nii.gz", labels(6, organ_value=5))
    return pred, gt.parent


def test_evaluate_writes_report_and_prints_summary(tmp_path: Path, data: tuple[Path, Path]) -> None:
    pred, gt = data
    out = tmp_path / "report"
    run = cli(
        "evaluate", "--pred", pred, "--gt", gt, "--label-map", "kits",
        "--pred-label-map", "tumorsynth", "--organ", "kidney", "--out", out,
        "--bootstrap", "50", "--seed", "1", "--no-progress",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "2 cases (1 with tumor, 1 controls): DSC 0.800" in run.out
    assert {p.name for p in out.iterdir()} == {
        "report.json", "report.md", "sensitivity_by_size.png", "dsc_distribution.png",
    }  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["dsc_mean"] == pytest.approx(0.8)  # 8 of 10 columns overlap
    assert report["summary"]["patient_specificity"] == 1.0
    settings = report["settings"]
    assert settings["tumor_ids_pred"] == [6] and settings["tumor_ids_gt"] == [2, 3]
    assert settings["label_map_pred"] == {"preset": "tumorsynth"}
    assert settings["n_bootstrap"] == 50 and settings["seed"] == 1


def test_options_reach_the_metrics(tmp_path: Path, data: tuple[Path, Path]) -> None:
    pred, gt = data
    out = tmp_path / "strict"
    run = cli(
        "evaluate", "--pred", pred, "--gt", gt, "--label-map", "kits", "--pred-label-map",
        "tumorsynth", "--out", out, "--tolerance-mm", "1", "--patient-threshold-mm3", "1000",
        "--bootstrap", "0", "--no-plots", "--no-progress",
    )  # fmt: skip
    assert run.code == 0, run.err
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert summary["nsd_mean"] < 1.0  # a 2 mm shift is outside a 1 mm tolerance
    assert summary["patient_sensitivity"] == 0.0  # 400 mm^3 is under 1000 mm^3
    assert summary["ci95"]["dsc_mean"] == [None, None]
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing_pred", "--pred folder does not exist"),
        ("no_match", "have no ground truth"),
        ("grid", "k1.nii.gz: shape (40, 40, 11) does not match"),
        ("organ", "--organ 'pancreas'"),
        ("label_map", "expected a preset"),
        ("no_label_map", "--label-map: is required"),
    ],
)
def test_bad_input_exits_2_and_names_it(
    tmp_path: Path, data: tuple[Path, Path], change: str, expected: str
) -> None:
    pred, gt = data
    args = ["--label-map", "kits", "--pred-label-map", "tumorsynth"]
    if change == "missing_pred":
        pred = tmp_path / "no_such_folder"
    elif change == "no_match":
        (pred / "k1.nii.gz").rename(pred / "other.nii.gz")
    elif change == "grid":
        save(pred / "k1.nii.gz", np.zeros((40, 40, 11)))
    elif change == "organ":
        args += ["--organ", "pancreas"]
    elif change == "label_map":
        args = ["--label-map", "nonsense"]
    elif change == "no_label_map":
        args = []
    out = tmp_path / "out"
    run = cli("evaluate", "--pred", pred, "--gt", gt, "--out", out, *args, "--no-progress")
    assert run.code == 2
    assert expected in run.err and run.err.startswith("tumorsynth evaluate: error:")
    assert not out.exists()
