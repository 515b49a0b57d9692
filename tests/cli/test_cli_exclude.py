"""``tumorsynth synthesize --exclude-label ID --exclude-margin-mm M``: synthetic tumors into scans
that hold real lesions, kept a margin away from them (single image and dataset modes), bad values
refused before any output, and run folders from before the options still resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import edt
import numpy as np
import pytest
from batch_helpers import write_phantoms
from cli_runner import cli
from shared_data import require_data

from tumorsynth.box import Box
from tumorsynth.io import load_image, load_label
from tumorsynth.io.records import read_manifest


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantoms(tmp_path_factory.mktemp("exclude") / "Dataset001_Phantom", ["p0", "p1"])


def synthesize(dataset: Path, out: Path, *extra: object):
    return cli(
        "synthesize",
        "--dataset",
        dataset,
        "--out",
        out,
        "--label-map",
        "phantom",
        "--count",
        1,
        "--size",
        "small",
        "--no-progress",
        *extra,
    )


def test_dataset_mode_records_what_was_excluded(dataset: Path, tmp_path: Path) -> None:
    run = synthesize(dataset, tmp_path / "out", "--exclude-label", 7, "--exclude-margin-mm", 5)
    assert run.code == 0, run.err
    records = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert len(records) == 2
    assert all(r.extra["excluded"] == {"labels": [7], "margin_mm": 5.0} for r in records)
    settings = json.loads((tmp_path / "out" / "run.json").read_text())["settings"]
    assert settings["exclude_labels"] == [7] and settings["exclude_margin_mm"] == 5.0


@pytest.mark.parametrize("ids", ["7", "[7]"])
def test_options_from_a_config(dataset: Path, tmp_path: Path, ids: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"exclude_label: {ids}\nexclude_margin_mm: 5\n")
    run = synthesize(dataset, tmp_path / "out", "--config", config)
    assert run.code == 0, run.err
    settings = json.loads((tmp_path / "out" / "run.json").read_text())["settings"]
    assert settings["exclude_labels"] == [7] and settings["exclude_margin_mm"] == 5.0


def test_a_run_folder_from_before_the_options_still_resumes(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert synthesize(dataset, out).code == 0
    # Left at their defaults, the options stay out of run.json: it is what earlier versions wrote.
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert "exclude_labels" not in settings and "exclude_margin_mm" not in settings
    again = synthesize(dataset, out)
    assert again.code == 0, again.err
    assert "2 already done, skipped" in again.out
    other = synthesize(dataset, out, "--exclude-label", 7)
    assert other.code != 0
    assert "exclude_labels[0]: absent in run.json, 7 now" in other.err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (
            ["--exclude-label", 7, "--exclude-margin-mm", -2],
            "--exclude-margin-mm: expected a margin",
        ),
        (["--exclude-margin-mm", 5], "a margin of 5 mm was given without label ids"),
        (["--exclude-label", 0], "--exclude-label: expected label ids >= 1"),
        (["--exclude-label", 1], r"label id\(s\) \[1\] are the liver itself"),
    ],
)
def test_bad_exclusion_is_refused_before_any_output(
    dataset: Path, tmp_path: Path, extra: list[object], match: str
) -> None:
    run = synthesize(dataset, tmp_path / "out", *extra)
    assert run.code != 0
    assert re.search(match, run.err), run.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.realdata
@pytest.mark.slow
def test_ircad_117_tumors_keep_10_mm_from_the_real_ones(tmp_path: Path) -> None:
    """Host-matched synthesis in IRCAD 1.17 (label 1 liver, 2 its two real tumors)."""
    folder = require_data("ircadb01_p17")
    image, label = folder / "ircadb01_p17_ct.nii.gz", folder / "ircadb01_p17_label.nii.gz"
    out = tmp_path / "out"
    run = cli(
        "synthesize",
        "--image",
        image,
        "--label",
        label,
        "--label-map",
        "lits",
        "--count",
        3,
        "--size",
        "medium",
        "--exclude-label",
        2,
        "--exclude-margin-mm",
        10,
        "--seed",
        0,
        "--out",
        out,
        "--no-progress",
    )
    assert run.code == 0, run.err
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == 3
    ct, seg = load_image(image), load_label(label)
    new_ct, new_seg = (
        load_image(out / records[0].image_path),
        load_label(out / records[0].label_path),
    )
    real = seg.array == 2
    synthetic = (new_seg.array == 2) & ~real
    assert synthetic.sum() > 3 * 4000  # three medium tumors (0.6 mm^3 voxels: > 2.4 mL each)
    # Real tumor voxels unchanged, image and label.
    assert np.array_equal(new_ct.array[real], ct.array[real]) and (new_seg.array[real] == 2).all()
    # Every synthetic voxel >= 10 mm from every real one (edt over a box holding both).
    box = Box.of_mask(real | synthetic)
    distance = edt.edt(~real[box.slices], anisotropy=ct.spacing_mm, black_border=False)
    assert distance[synthetic[box.slices]].min() >= 10.0
