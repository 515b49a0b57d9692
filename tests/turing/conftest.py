"""Fixtures of the reader-study tests that need the shared CTs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shared_data import require_data

from tumorsynth.cli.main import main


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> dict[str, Path]:
    """1.17 as a list file (lits labels: 1 liver, 2 its tumors); two large synthetic liver
    tumors in 1.7 (1 liver, 5 kidney), one case, by the heuristic generator."""
    p17, p07 = require_data("ircadb01_p17"), require_data("ircadb01_p07")
    root = tmp_path_factory.mktemp("turing_ircad")
    real = root / "real.txt"
    real.write_text(f"{p17 / 'ircadb01_p17_ct.nii.gz'} {p17 / 'ircadb01_p17_label.nii.gz'}\n")
    label_map = root / "ircad07.json"
    label_map.write_text(json.dumps({"liver": 1, "kidney": 5}))
    code = main(
        [
            "synthesize", "--image", str(p07 / "ircadb01_p07_ct.nii.gz"),
            "--label", str(p07 / "ircadb01_p07_label.nii.gz"), "--label-map", str(label_map),
            "--organ", "liver", "--size", "large", "--count", "2", "--per-case", "1",
            "--seed", "0", "--out", str(root / "synth"), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    return {"root": root, "real": real, "synthetic": root / "synth" / "manifest.jsonl", "p17": p17}
