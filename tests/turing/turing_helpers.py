"""Small reader studies written straight through :mod:`tumorsynth.turing.layout` (no synthesis,
so the tests of the store, the app and the readers do not depend on ``turing create``):
:func:`make_study` (distinct noise items, a key holding :data:`SECRETS`) and
:func:`write_tiny_study` (smooth noise with a blob in the middle); both through
:func:`write_study`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from tumorsynth.turing.layout import KEY_NAME, STUDY_NAME, KeyEntry, StudyInfo

SHAPE = (8, 16, 16)
#: Strings only the key of :func:`make_study` holds: no response of the app may contain them.
SECRETS = ("SECRETSRC", "SECRETLBL", "SECRETGEN")


def write_study(
    folder: Path,
    info: StudyInfo,
    volumes: Mapping[str, np.ndarray],
    key: Sequence[KeyEntry],
    seed: int,
) -> None:
    """The study folder ``folder``: ``info`` as study.json, each volume as its item's int16 file,
    ``key`` (and ``seed``) as the answer key; no answers yet."""
    (folder / "items").mkdir(parents=True)
    (folder / "key").mkdir()
    (folder / STUDY_NAME).write_text(json.dumps(info.to_dict()))
    for item_id, volume in volumes.items():
        volume.astype("<i2").tofile(folder / "items" / f"{item_id}.raw")
    key_data = {"items": [entry.to_dict() for entry in key], "seed": seed}
    (folder / KEY_NAME).write_text(json.dumps(key_data))


def make_study(folder: Path, n_items: int = 6, study_id: str = "c0ffee00d15ea5e5") -> StudyInfo:
    """A study of ``n_items`` int16 items of shape :data:`SHAPE`, each of other values (item
    ``i`` around ``1000 i``), its key (sources and generators hold :data:`SECRETS`)."""
    rng = np.random.default_rng(7)
    ids = tuple(f"{int(v):016x}" for v in rng.integers(1, 2**62, n_items))
    info = StudyInfo(
        title="Tiny study",
        item_ids=ids,
        shape=SHAPE,
        spacing_mm=(2.5, 0.8, 0.8),
        study_id=study_id,
    )
    volumes = {}
    key = []
    for i, item_id in enumerate(ids):
        volumes[item_id] = rng.integers(-200, 300, SHAPE) + 1000 * i
        truth = "synthetic" if i % 2 else "real"
        key.append(
            KeyEntry(
                item_id=item_id,
                truth=truth,
                organ="liver",
                size_class="small",
                diameter_mm=12.5,
                volume_ml=1.0,
                source_image=f"/data/case_{i}_SECRETSRC.nii.gz",
                source_label=f"/data/case_{i}_SECRETLBL.nii.gz",
                component=1,
                center_vox=(10, 20, 30),
                generator="SECRETGEN-heuristic" if truth == "synthetic" else "",
            )
        )
    write_study(folder, info, volumes, key, seed=7)
    return info


def write_tiny_study(
    folder: Path, n_items: int = 10, shape: tuple[int, int, int] = (8, 16, 16), seed: int = 0
) -> tuple[StudyInfo, dict[str, KeyEntry]]:
    """``n_items`` items of smooth noise with a blob in the middle, half of them "synthetic" in
    the key: (the study's info, item id -> key entry)."""
    rng = np.random.default_rng(seed)
    ids = tuple(f"{int(v):016x}" for v in rng.integers(0, 2**63, size=n_items))
    info = StudyInfo(
        title="tiny study",
        item_ids=ids,
        shape=shape,
        spacing_mm=(2.0, 1.0, 1.0),
        study_id=f"{int(rng.integers(0, 2**63)):016x}",
    )
    zz, yy, xx = np.indices(shape)
    centre = [(s - 1) / 2 for s in shape]
    blob = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) < 9
    volumes = {}
    key = {}
    for index, item in enumerate(ids):
        volume = rng.normal(100, 15, size=shape)
        volume[blob] -= 40
        volumes[item] = volume
        truth = "synthetic" if index % 2 else "real"
        key[item] = KeyEntry(
            item_id=item,
            truth=truth,
            organ="liver" if index % 3 else "kidney",
            size_class=("tiny", "small", "medium", "large")[index % 4],
            diameter_mm=10.0 + index,
            volume_ml=0.5 + index,
            source_image=f"/data/{truth}_{index}.nii.gz",
            source_label=f"/data/{truth}_{index}_seg.nii.gz",
            component=1,
            center_vox=(4, 8, 8),
        )
    write_study(folder, info, volumes, list(key.values()), seed)
    return info, key


def write_config(folder: Path, sources: dict[str, Path], **settings) -> Path:
    config = {
        "title": "Reader study 2",
        "seed": 11,
        "real": [{"path": str(sources["real"]), "label_map": "lits"}],
        "synthetic": [{"path": str(sources["synthetic"])}],
        "organs": ["liver"],
        **settings,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
