"""``tumorsynth predict`` never writes onto an input: targets are derived and checked up front."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from cli_runner import cli
from file_checks import file_hashes as digest
from tiny import segmentor_settings, write_phantom_dataset

from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom

# Every test here needs the training run of `trained` (about 11 s on 2 cores).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A 2-step segmentor checkpoint and one phantom CT + organ label (files without _0000)."""
    root = tmp_path_factory.mktemp("predict_trust")
    ct, seg = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    data = write_phantom_dataset(root / "Dataset001_P", cases=1)
    config = segmentor_settings(data, root / "run")
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli("train", "--config", root / "c.yaml", "--no-progress")
    assert code == 0, err
    scans = root / "scans"  # CTs named without _0000: a prediction would take the same name
    save_volume(ct, scans / "ph0.nii.gz")
    masks = root / "masks"
    save_volume(seg, masks / "ph0.nii.gz")
    return root / "run" / "checkpoints" / "last", scans


def predict(checkpoint: Path, *args: object):
    return cli("predict", "--checkpoint", checkpoint, "--device", "cpu", "--no-progress", *args)


def test_prediction_into_the_input_folder_would_overwrite_the_ct_and_is_refused(trained):
    checkpoint, scans = trained
    before = digest(scans)
    code, _, err = predict(checkpoint, "--input", scans, "--out", scans)
    assert code == 2
    assert "would overwrite the input" in err and "ph0.nii.gz" in err
    assert digest(scans) == before


def test_prediction_onto_the_organ_masks_is_refused(trained, tmp_path):
    checkpoint, scans = trained
    masks = scans.parent / "masks"
    before = digest(masks)
    code, _, err = predict(checkpoint, "--input", scans, "--organ-mask", masks, "--out", masks)
    assert code == 2 and "would overwrite the input" in err
    assert digest(masks) == before


def test_a_missing_organ_mask_is_refused_before_any_prediction(trained, tmp_path):
    checkpoint, scans = trained
    empty = tmp_path / "no_masks"
    empty.mkdir()
    code, _, err = predict(
        checkpoint, "--input", scans, "--organ-mask", empty, "--out", tmp_path / "pred"
    )
    assert code == 2 and "organ mask of case 'ph0' does not exist" in err
    assert not (tmp_path / "pred").exists()


@pytest.mark.parametrize(
    ("names", "refusal"),
    [
        (["a.nii.gz", "a_0000.nii.gz"], "both predictions would be written to a.nii.gz"),
        (["-rf.nii.gz"], "expected one path component"),
    ],
    ids=["two inputs, one case id", "unsafe case id"],
)
def test_case_ids_from_file_names_are_checked_before_any_output(trained, tmp_path, names, refusal):
    checkpoint, scans = trained
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in names:
        shutil.copy(scans / "ph0.nii.gz", inputs / name)
    code, _, err = predict(checkpoint, "--input", inputs, "--out", tmp_path / "pred")
    assert code == 2 and refusal in err
    assert not (tmp_path / "pred").exists()


def test_a_good_prediction_still_lands_beside_nothing_it_reads(trained, tmp_path):
    checkpoint, scans = trained
    code, out, err = predict(checkpoint, "--input", scans, "--out", tmp_path / "pred")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "pred").iterdir()] == ["ph0.nii.gz"]
