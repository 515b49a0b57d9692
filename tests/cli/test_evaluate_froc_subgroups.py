"""``tumorsynth evaluate`` with tumor probability maps (FROC) and a metadata table (subgroups)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_runner import cli

SHAPE = (20, 20, 8)
AFFINE = np.diag([1.0, 1.0, 2.5, 1.0])


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, AFFINE), str(path))


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Four KiTS cases: the tumor's probability is 0.8 in k0, k1 and 0.2 in k2, k3; every case
    has false-positive voxels at 0.6 and 0.3; predictions (tumorsynth labels) = p >= 0.5."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    rows = ["case_id,site,age"]
    for i in range(4):
        label = np.zeros(SHAPE, np.uint8)
        label[2:18, 2:18, 1:7] = 1
        label[5:9, 5:9, 2:5] = 2
        p = np.zeros(SHAPE)
        p[5:9, 5:9, 2:5] = 0.8 if i < 2 else 0.2
        p[15, 15, 5], p[15, 12, 5] = 0.6, 0.3
        save(gt / f"k{i}.nii.gz", label)
        save(pred / f"k{i}.nii.gz", np.where(p >= 0.5, 6, 5 * (label > 0)).astype(np.uint8))
        save(
            pred / "probabilities" / f"k{i}_kidney_tumor.nii.gz", np.rint(255 * p).astype(np.uint8)
        )
        rows.append(f"k{i},{'AB'[i // 2]},{40 + 10 * i}")
    meta = tmp_path / "meta.csv"
    meta.write_text("\n".join(rows) + "\n")
    return pred, gt, meta


ARGS = ["--label-map", "kits", "--pred-label-map", "tumorsynth", "--organ", "kidney"]


def test_froc_and_subgroups_reach_the_report(tmp_path: Path, data: tuple[Path, Path, Path]) -> None:
    pred, gt, meta = data
    out = tmp_path / "out"
    run = cli(
        "evaluate", "--pred", pred, "--gt", gt, *ARGS, "--out", out, "--metadata", meta,
        "--metadata-bins", "age=55", "--bootstrap", "100", "--no-progress",
    )  # fmt: skip
    assert run.code == 0, run.err
    # 1 FP per case: thresholds above 0.3 -> the 0.8 tumors only (2 of 4), best at 0.8 (no FP);
    # 2 FP per case: threshold 0.2 finds all four
    assert "FROC sensitivity@FP per case: kidney (4 lesions) 0.500@1, 1.000@2" in run.out
    assert "subgroups wholly below the overall estimate on some metric: none" in run.out
    assert {p.name for p in out.iterdir()} == {
        "report.json", "report.md", "sensitivity_by_size.png", "dsc_distribution.png",
        "froc.png", "subgroups.png",
    }  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    kidney = report["froc"]["organs"]["kidney"]
    assert [p["threshold"] for p in kidney["operating_points"]] == [0.8, 0.2, 0.2, 0.2]
    assert report["settings"]["probabilities_dir"] == str(pred / "probabilities")
    groups = {g["name"]: g for c in report["subgroups"]["columns"] for g in c["groups"]}
    assert groups["A"]["summary"]["lesion_sensitivity"] == 1.0
    assert groups["B"]["summary"]["lesion_sensitivity"] == 0.0
    assert groups[">= 55"]["case_ids"] == ["k2", "k3"]
    markdown = (out / "report.md").read_text()
    assert "### kidney tumors: 4 lesions in 4 cases" in markdown
    assert "### age (bins, edges 55)" in markdown


def test_without_maps_it_says_why(tmp_path: Path, data: tuple[Path, Path, Path]) -> None:
    pred, gt, _ = data
    for path in (pred / "probabilities").iterdir():
        path.unlink()
    (pred / "probabilities").rmdir()
    run = cli("evaluate", "--pred", pred, "--gt", gt, *ARGS, "--out", tmp_path / "o",
              "--bootstrap", "0", "--no-plots", "--no-progress")  # fmt: skip
    assert run.code == 0, run.err
    assert "FROC not computed: no probability maps:" in run.out
    assert json.loads((tmp_path / "o" / "report.json").read_text())["subgroups"] is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("duplicate", "meta.csv, line 3: case 'k0' is listed twice (lines 2 and 3)"),
        ("no_case_id", "meta.csv: expected a 'case_id' column"),
        ("bins_alone", "--metadata-bins: needs --metadata FILE.csv"),
        ("bad_bins", "--metadata-bins age=old: expected comma-separated numbers"),
        ("missing_map", "k3_kidney_tumor.nii.gz: missing: 1 of 4 cases"),
        ("grid", "k1_kidney_tumor.nii.gz: shape (20, 20, 7) does not match (20, 20, 8)"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, data: tuple[Path, Path, Path], change: str, expected: str
) -> None:
    pred, gt, meta = data
    extra = ["--metadata", meta]
    if change == "duplicate":
        meta.write_text("case_id,site\nk0,A\nk0,B\n")
    elif change == "no_case_id":
        meta.write_text("case,site\nk0,A\n")
    elif change == "bins_alone":
        extra = ["--metadata-bins", "age=50"]
    elif change == "bad_bins":
        extra += ["--metadata-bins", "age=old"]
    elif change == "missing_map":
        (pred / "probabilities" / "k3_kidney_tumor.nii.gz").unlink()
    elif change == "grid":
        save(pred / "probabilities" / "k1_kidney_tumor.nii.gz", np.zeros((20, 20, 7), np.uint8))
    out = tmp_path / "out"
    run = cli("evaluate", "--pred", pred, "--gt", gt, *ARGS, "--out", out, *extra, "--no-progress")
    assert run.code == 2, run.out
    assert expected in run.err and run.err.startswith("tumorsynth evaluate: error:")
    assert not out.exists()
