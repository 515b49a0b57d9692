"""Outputs never mix with inputs or with another dataset's files (synthesize, export-nnunet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_runner import cli
from file_checks import file_hashes as digests
from tiny import write_phantom_dataset


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("apart") / "Dataset001_H", cases=1)


def synthesize(dataset: Path, out: Path):
    return cli(
        "synthesize", "--dataset", dataset, "--label-map", "phantom", "--count", 1,
        "--out", out, "--no-progress",
    )  # fmt: skip


@pytest.mark.parametrize("where", ["same", "inside", "imagesTr"])
def test_synthesize_into_its_own_dataset_is_refused(healthy: Path, where: str) -> None:
    out = {"same": healthy, "inside": healthy / "synth", "imagesTr": healthy / "imagesTr"}[where]
    before = digests(healthy)
    run = synthesize(healthy, out)
    assert run.code == 2, run.out
    assert "outputs would mix with the inputs" in run.err and str(healthy) in run.err
    assert digests(healthy) == before
    assert not (healthy / "synth").exists()


def test_a_new_run_into_another_datasets_folder_is_refused_and_deletes_nothing(
    healthy: Path, tmp_path: Path
) -> None:
    other = tmp_path / "Dataset009_Other"  # someone else's synthetic dataset, no run.json
    (other / "imagesTr").mkdir(parents=True)
    (other / "labelsTr").mkdir()
    shutil.copy(healthy / "imagesTr" / "ph0_0000.nii.gz", other / "imagesTr" / "x_syn0_0000.nii.gz")
    shutil.copy(healthy / "labelsTr" / "ph0.nii.gz", other / "labelsTr" / "x_syn0.nii.gz")
    before = digests(other)
    run = synthesize(healthy, other)
    assert run.code == 2, run.out
    assert "expected a new or empty output folder" in run.err and "imagesTr, labelsTr" in run.err
    assert digests(other) == before  # its *_syn0 files are not ours to clean up


def test_a_run_of_ours_still_resumes(healthy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert synthesize(healthy, out).code == 0
    again = synthesize(healthy, out)
    assert again.code == 0 and "already done" in again.out


@pytest.mark.parametrize("role", ["--real", "--healthy"])
def test_export_into_an_input_dataset_is_refused(healthy: Path, tmp_path: Path, role: str):
    real = tmp_path / "Dataset002_Real"
    shutil.copytree(healthy, real)
    before = digests(real)
    target = real if role == "--real" else healthy
    run = cli(
        "export-nnunet", "--healthy", healthy, "--label-map", "phantom", "--real", real,
        "--real-label-map", "phantom", "--out", target, "--no-progress",
    )  # fmt: skip
    assert run.code == 2, run.out
    assert f"is the {role} dataset" in run.err
    assert digests(real) == before and not (healthy / "manifest.jsonl").exists()


def test_export_real_cases_need_their_label_map_and_a_wrong_one_is_refused(
    healthy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "Dataset010_Mixed"
    base = ("export-nnunet", "--healthy", healthy, "--label-map", "phantom", "--real", healthy)
    run = cli(*base, "--out", out, "--no-progress")
    assert run.code == 2 and "--real-label-map: is required" in run.err
    assert "pass --real-label-map phantom" in run.err
    run = cli(*base, "--real-label-map", "totalsegmentator", "--out", out, "--no-progress")
    assert run.code == 2 and "does not fit label map 'totalsegmentator'" in run.err
    assert not out.exists()  # refused before the synthetic cases were made
    run = cli(*base, "--real-label-map", "phantom", "--out", out, "--no-progress")
    assert run.code == 0, run.err
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [
        "ph0_syn0.nii.gz",
        "real_ph0.nii.gz",
    ]
