"""``tumorsynth preview MANIFEST`` reads only the files a batch derives from each record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import cli

from tumorsynth.io.nifti import save_volume


@pytest.fixture(scope="module")
def batch(tmp_path_factory, phantom) -> Path:
    root = tmp_path_factory.mktemp("preview_trust")
    ct, seg = phantom
    save_volume(ct, root / "abdo_0000.nii.gz")
    save_volume(seg, root / "abdo.nii.gz")
    run = cli(
        "synthesize", "--image", root / "abdo_0000.nii.gz", "--label", root / "abdo.nii.gz",
        "--label-map", "phantom", "--count", 2, "--out", root / "out", "--no-progress",
    )  # fmt: skip
    assert run.code == 0, run.err
    return root / "out"


def test_preview_of_a_manifest_writes_one_montage_per_variant(batch: Path, tmp_path: Path):
    run = cli("preview", batch / "manifest.jsonl", "--out", tmp_path / "png")
    assert run.code == 0, run.err
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["abdo_syn0.png"]


@pytest.mark.parametrize("path", ["../abdo_0000.nii.gz", "/etc/hostname", "imagesTr/x.nii.gz"])
def test_a_record_path_other_than_the_derived_one_is_refused(batch: Path, tmp_path: Path, path):
    records = [json.loads(line) for line in (batch / "manifest.jsonl").read_text().splitlines()]
    records[1]["image_path"] = path
    edited = tmp_path / "manifest.jsonl"
    edited.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = cli("preview", edited, "--out", tmp_path / "png")
    assert run.code == 2
    assert f"{edited}:2: image_path" in run.err and "imagesTr/abdo_syn0_0000.nii.gz" in run.err
    assert not (tmp_path / "png").exists()
