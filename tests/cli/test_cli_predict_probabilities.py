"""``tumorsynth predict --save-probabilities``: the tumor probability map beside the labels,
through the real entry point (the files the FROC of ``tumorsynth evaluate`` reads)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from cli_runner import cli
from tiny import constant_segmentor

from tumorsynth.io.nifti import Volume, save_volume


def scans(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for case in ("liver_0", "liver_1"):
        ct = rng.normal(40.0, 30.0, (24, 20, 10)).astype(np.int16)
        ct[:3] = -1000  # air: the intensities look like CT
        save_volume(Volume(ct, np.diag([-4.0, -4.0, 5.0, 1.0])), folder / f"{case}_0000.nii.gz")
    return folder


def predict(checkpoint: Path, tmp_path: Path, *flags: str) -> Path:
    """``tumorsynth predict`` (CPU) of two scans; the output folder."""
    inputs, out = scans(tmp_path / "scans"), tmp_path / "pred"
    run = cli(
        "predict",
        "--checkpoint",
        checkpoint,
        "--input",
        inputs,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
        *flags,
    )
    assert run.code == 0, run.err
    return out


def test_probabilities_are_written_per_case_and_tumor(tmp_path: Path) -> None:
    checkpoint = constant_segmentor(tmp_path / "ckpt", tumor_bias=-1.0)
    out = predict(checkpoint, tmp_path, "--save-probabilities")
    assert sorted(p.name for p in (out / "probabilities").iterdir()) == [
        "liver_0_liver_tumor.nii.gz",
        "liver_1_liver_tumor.nii.gz",
    ]
    prob = nib.load(out / "probabilities" / "liver_1_liver_tumor.nii.gz")
    labels = nib.load(out / "liver_1.nii.gz")
    assert prob.get_data_dtype() == np.uint8 and prob.shape == labels.shape
    assert np.array_equal(prob.affine, labels.affine)
    p = np.exp(-1.0) / (2 + np.exp(-1.0))  # logits (0, 0, -1): background wins every tie
    assert np.all(np.asanyarray(prob.dataobj) == round(255 * p))
    assert np.all(np.asanyarray(labels.dataobj) == 0)


def test_without_the_flag_no_probabilities_are_written(tmp_path: Path) -> None:
    checkpoint = constant_segmentor(tmp_path / "ckpt", tumor_bias=1.0)
    out = predict(checkpoint, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["liver_0.nii.gz", "liver_1.nii.gz"]
