"""Shared fixtures: small phantoms for fast property tests, the real CTs of ../shared/data.

Helpers that tests import live in plain modules (``shared_data``, ``tiny``), never here: two
``conftest.py`` files share one module name, so ``from conftest import ...`` would depend on the
order in which pytest collects the folders.
"""

from __future__ import annotations

import json
import locale
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_data import require_data, require_module
from tiny import synthesize_phantom, tiny_adversary, tiny_diffusion, write_phantom_dataset

from tumorsynth.cli.main import main
from tumorsynth.io import load_image, load_label
from tumorsynth.io.nifti import Volume
from tumorsynth.phantom import make_phantom


@pytest.fixture(autouse=True)
def _process_locale_kept() -> Iterator[None]:
    """SimpleITK's DICOM writer (used by tests to make series) sets the C locale for the whole
    process, after which every later ``read_text()`` without an encoding decodes as ASCII: put
    the locale back after each test, so no test depends on which ran before it."""
    before = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != before:
        locale.setlocale(locale.LC_ALL, before)


@pytest.fixture(scope="session")
def phantom() -> tuple[Volume, Volume]:
    """A small phantom (2.5 x 2.5 x 3 mm) for fast property tests; do not modify its arrays."""
    ct, seg = make_phantom(0, shape=(128, 108, 64), spacing_mm=(2.5, 2.5, 3.0))
    ct.array.setflags(write=False)
    seg.array.setflags(write=False)
    return ct, seg


def _read_only_pair(folder: Path, image: str, label: str) -> tuple[Volume, Volume]:
    ct, seg = load_image(folder / image), load_label(folder / label)
    ct.array.setflags(write=False)  # a pipeline that wrote into its input would raise
    seg.array.setflags(write=False)
    return ct, seg


@pytest.fixture(scope="session")
def p07() -> tuple[Volume, Volume]:
    """IRCAD patient 1.7 (liver 1, kidney 5), native 0.78 x 0.78 x 1.6 mm, LPS."""
    return _read_only_pair(
        require_data("ircadb01_p07"), "ircadb01_p07_ct.nii.gz", "ircadb01_p07_label.nii.gz"
    )


@pytest.fixture(scope="session")
def p17() -> tuple[Volume, Volume]:
    """IRCAD patient 1.17 with two real liver tumors (1 liver, 2 tumor)."""
    return _read_only_pair(
        require_data("ircadb01_p17"), "ircadb01_p17_ct.nii.gz", "ircadb01_p17_label.nii.gz"
    )


@pytest.fixture(scope="session")
def totalseg() -> tuple[Volume, Volume]:
    """The TotalSegmentator example (30 slices, 3 mm, RAS) with its organ labels."""
    return _read_only_pair(
        require_data("totalseg_example"), "example_ct_sm.nii.gz", "example_seg.nii.gz"
    )


@pytest.fixture
def locked_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder nobody may write into (mode 0o500). Root can write anyway, so for root the
    permission check tumorsynth makes (os.access) is told the truth a normal user would get."""
    from tumorsynth.io import atomic

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):
        real = os.access

        def access(path, mode, *args, **kwargs):
            inside = (
                Path(path).resolve() == locked.resolve()
                or locked.resolve() in Path(path).resolve().parents
            )
            if inside and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(atomic.os, "access", access)
    yield locked
    locked.chmod(0o700)


@pytest.fixture(scope="session")
def diffusion_checkpoint(tmp_path_factory) -> Path:
    """A saved tiny diffusion checkpoint folder (untrained weights)."""
    require_module("torch")
    folder = tmp_path_factory.mktemp("diffusion") / "model"
    tiny_diffusion().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def adversarial_checkpoint(tmp_path_factory) -> Path:
    """A saved tiny adversarial generator checkpoint folder (untrained weights)."""
    require_module("torch")
    folder = tmp_path_factory.mktemp("adversarial") / "model"
    tiny_adversary().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def generator_options(diffusion_checkpoint, adversarial_checkpoint) -> dict[str, dict]:
    """Options each registered generator needs to be built in tests."""
    return {
        "diffusion": {"checkpoint": diffusion_checkpoint, "device": "cpu"},
        "adversarial": {"checkpoint": adversarial_checkpoint, "device": "cpu"},
    }


@pytest.fixture(scope="session")
def tumor_phantom_case(tmp_path_factory) -> dict[str, str]:
    """A phantom CT with 2 medium synthetic liver tumors, written as an annotated case (labels
    in the tumorsynth convention): the diffusion model's training data in tests."""
    from tumorsynth.io.nifti import save_volume

    folder = tmp_path_factory.mktemp("tumor_phantom")
    ct, seg = make_phantom(2, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    out = synthesize_phantom((ct, seg), count=2, size="medium", rng=0)
    image = save_volume(Volume(out.image, ct.affine), folder / "tumor_ct.nii.gz")
    label = save_volume(Volume(out.label, ct.affine), folder / "tumor_label.nii.gz")
    return {"image": str(image), "label": str(label), "label_map": "tumorsynth"}


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """An nnU-Net folder of three small healthy phantoms (labels: the "phantom" preset)."""
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "Dataset001_Phantom", cases=3)


@pytest.fixture(scope="session")
def ircad_study_sources(tmp_path_factory) -> dict[str, Path]:
    """The reader-study sources on the shared CTs: 1.17 as a list file (lits labels: 1 liver, 2 its tumors); two large synthetic liver
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
