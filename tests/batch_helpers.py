"""Phantom datasets, settings and folder checks shared by the batch tests (pipeline and CLI).

Imported as ``from batch_helpers import ...`` (``tests/`` is on the test path, like ``tiny``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tumorsynth.io.nifti import save_volume
from tumorsynth.io.records import MANIFEST_NAME, read_manifest
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.batch import BatchSettings
from tumorsynth.pipelines.synthesize import TumorRequest

#: Small phantoms (64 x 56 x 32 voxels of 5 x 5 x 8 mm): a case synthesizes in a fraction of a
#: second, so tests that kill a run have many variants to catch it in.
SMALL_SHAPE, SMALL_SPACING = (64, 56, 32), (5.0, 5.0, 8.0)


def write_phantoms(
    root: Path,
    case_ids: Iterable[str],
    shape: tuple[int, int, int] = SMALL_SHAPE,
    spacing_mm: tuple[float, float, float] = SMALL_SPACING,
) -> Path:
    """An nnU-Net v2 folder ``root`` with one healthy phantom per case id (seeds 0, 1, ...;
    labels of the ``"phantom"`` preset)."""
    for seed, case_id in enumerate(case_ids):
        ct, seg = make_phantom(seed, shape=shape, spacing_mm=spacing_mm)
        save_volume(ct, root / "imagesTr" / f"{case_id}_0000.nii.gz")
        save_volume(seg, root / "labelsTr" / f"{case_id}.nii.gz")
    return root


def batch_settings(**changes: object) -> BatchSettings:
    """One small liver tumor per case, phantom labels, seed 7; ``changes`` override."""
    options: dict[str, object] = {
        "requests": (TumorRequest("liver", 1, "small"),),
        "label_map": "phantom",
        "seed": 7,
    }
    options.update(changes)
    return BatchSettings(**options)  # type: ignore[arg-type]


def assert_manifest_is_the_files(out: Path) -> None:
    """Every listed variant once with its files, no file outside the manifest, no temporaries,
    and ``dataset.json`` counting the listed variants."""
    records = read_manifest(out / MANIFEST_NAME)
    keys = [(r.case_id, r.variant, r.tumor_index) for r in records]
    assert len(keys) == len(set(keys)), f"duplicate records: {keys}"
    listed = {r.image_path for r in records} | {r.label_path for r in records}
    assert {p.relative_to(out).as_posix() for p in out.glob("*Tr/*")} == listed
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    if records:
        meta = json.loads((out / "dataset.json").read_text())
        assert meta["numTraining"] == len({r.image_path for r in records})
