"""A small reader study written straight through :mod:`tumorsynth.turing.layout` (no synthesis):
``n`` items of smooth noise with a blob in the middle, half of them "synthetic" in the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from tumorsynth.turing.layout import KEY_NAME, STUDY_NAME, KeyEntry, StudyInfo


def write_tiny_study(
    folder: Path, n_items: int = 10, shape: tuple[int, int, int] = (8, 16, 16), seed: int = 0
) -> tuple[StudyInfo, dict[str, KeyEntry]]:
    rng = np.random.default_rng(seed)
    ids = tuple(f"{int(v):016x}" for v in rng.integers(0, 2**63, size=n_items))
    info = StudyInfo(
        title="tiny study",
        item_ids=ids,
        shape=shape,
        spacing_mm=(2.0, 1.0, 1.0),
        study_id=f"{int(rng.integers(0, 2**63)):016x}",
    )
    (folder / "items").mkdir(parents=True)
    (folder / "key").mkdir()
    zz, yy, xx = np.indices(shape)
    centre = [(s - 1) / 2 for s in shape]
    blob = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) < 9
    key = {}
    for index, item in enumerate(ids):
        volume = rng.normal(100, 15, size=shape)
        volume[blob] -= 40
        volume.astype("<i2").tofile(folder / "items" / f"{item}.raw")
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
    (folder / STUDY_NAME).write_text(json.dumps(info.to_dict()))
    key_data = {"seed": seed, "items": [e.to_dict() for e in key.values()]}
    (folder / KEY_NAME).write_text(json.dumps(key_data))
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
