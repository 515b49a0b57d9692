"""Tumor records and manifests: one JSON record per synthetic tumor, one JSON line per record.

A record holds what a user needs to find and judge the tumor (case, organ, centre in mm, radii,
equivalent diameter, volume, mean HU of tumor and surrounding parenchyma) and what replay needs to
reproduce it voxel for voxel (the frozen shape and appearance specs, the generator and its
version, the source files and label map).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tumorsynth._types import plain_json
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import append_lines_durably, atomic_path

__all__ = ["MANIFEST_NAME", "TumorRecord", "append_records", "read_manifest", "rewrite_manifest"]

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class TumorRecord:
    """One synthetic tumor (units in the names: mm, mL, HU).

    ``center_vox`` is in the scan's voxel coordinates; ``center_mm`` in its world (scanner)
    coordinates through the affine. ``diameter_mm`` is the equivalent-sphere diameter of the
    labelled volume; ``early_stage`` means ``diameter_mm < 20``. ``image_path`` / ``label_path`` are
    relative to the manifest's folder when written by a batch.
    """

    case_id: str
    tumor_index: int
    organ: str
    size_class: str
    generator: str
    generator_version: str
    seed: int
    tumor_label: int
    center_vox: tuple[float, float, float]
    center_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    diameter_mm: float
    volume_ml: float
    n_voxels: int
    early_stage: bool
    tumor_mean_hu: float
    parenchyma_mean_hu: float
    contrast_hu: float
    exophytic: bool
    shape: Mapping[str, Any]
    appearance: Mapping[str, Any]
    attempts: int = 1
    filter_verdict: Mapping[str, Any] | None = None
    image_path: str | None = None
    label_path: str | None = None
    source_image: str | None = None
    source_label: str | None = None
    #: Content hashes of the sources (:func:`tumorsynth.io.identity.source_sha256`); replay
    #: refuses sources that do not match them.
    source_image_sha256: str | None = None
    source_label_sha256: str | None = None
    label_map: Mapping[str, Any] | None = None
    variant: int = 0
    variant_tumors: int | None = None
    tumorsynth_version: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return plain_json(asdict(self))  # type: ignore[return-value]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def with_paths(self, **paths: str | None) -> TumorRecord:
        return replace(self, **paths)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "<record>") -> TumorRecord:
        if not isinstance(data, Mapping):
            raise InputError(
                where,
                f"expected a JSON object (one tumor record), found {type(data).__name__}",
                fix="was it written by tumorsynth?",
            )
        known = {f.name for f in fields(cls)}
        required = [
            f.name
            for f in fields(cls)
            if f.name not in data and f.default is MISSING and f.default_factory is MISSING
        ]
        if required:
            raise InputError(
                where, f"tumor record lacks {required}", fix="was it written by tumorsynth?"
            )
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        for key in ("center_vox", "center_mm", "radii_mm"):
            value = values[key]
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise InputError(where, f"{key}: expected 3 numbers, found {value!r}")
            values[key] = tuple(value)
        if extra:
            values["extra"] = {**values.get("extra", {}), **extra}
        return cls(**values)


def append_records(manifest: str | os.PathLike[str], records: Iterable[TumorRecord]) -> None:
    """Append records to a JSON-lines manifest in one fsynced write (crash-safe, resumable)."""
    append_lines_durably(manifest, [record.to_json() for record in records])


def read_manifest(path: str | os.PathLike[str]) -> list[TumorRecord]:
    """Read a manifest; a last line cut off by a crash is ignored, any other bad line is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "manifest does not exist", fix="pass DIR/manifest.jsonl")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1] if not text.endswith("\n") else lines
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise InputError(
                f"{path}:{number}",
                f"expected one JSON record per line, found unparsable text ({exc})",
            ) from exc
        records.append(TumorRecord.from_dict(data, where=f"{path}:{number}"))
    return records


def rewrite_manifest(path: str | os.PathLike[str], records: Iterable[TumorRecord]) -> None:
    """Replace a manifest's content atomically (used to drop a cut-off variant on resume)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(record.to_json() + "\n" for record in records), encoding="utf-8")
