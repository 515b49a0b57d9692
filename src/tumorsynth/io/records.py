"""Tumor records and manifests: one JSON record per synthetic tumor, one JSON line per record.

A record holds what a user needs to find and judge the tumor (case, organ, centre in mm, radii,
equivalent diameter, volume, mean HU of tumor and surrounding parenchyma) and what replay needs to
reproduce it voxel for voxel (the frozen shape and appearance specs, the generator, its version
and the options that rebuild it, the source files and label map).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tumorsynth._types import plain_json
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import append_lines_durably, atomic_path
from tumorsynth.io.identity import check_case_id, variant_files
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap

__all__ = [
    "MANIFEST_NAME",
    "MAX_RADIUS_MM",
    "TumorRecord",
    "append_records",
    "check_record",
    "read_manifest",
    "read_numbered_manifest",
    "rewrite_manifest",
]

MANIFEST_NAME = "manifest.jsonl"
#: Largest tumor semi-axis a record may hold (mm); no organ holds a larger one.
MAX_RADIUS_MM = 250.0


@dataclass(frozen=True)
class TumorRecord:
    """One synthetic tumor (units in the names: mm, mL, HU).

    ``center_vox`` is in the scan's voxel coordinates; ``center_mm`` in its world (scanner)
    coordinates through the affine. ``diameter_mm`` is the equivalent-sphere diameter of the
    labelled volume; ``early_stage`` means ``diameter_mm < 20``. ``image_path`` / ``label_path`` are
    relative to the manifest's folder when written by a batch. ``generator_options`` rebuild the
    generator (``get_generator(generator, **generator_options)``: a checkpoint and the hashes of
    its files, for instance); records written before they were kept hold none, ``{}``.
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
    generator_options: Mapping[str, Any] = field(default_factory=dict)
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
        return replace(self, **paths)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "<record>") -> TumorRecord:
        """A record from its JSON object; a missing field or a value of the wrong type (a bool
        where an int belongs, NaN, a string for a number) is an :class:`InputError` naming
        ``where`` and the field."""
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
        for f in fields(cls):
            if f.name in values:
                values[f.name] = _checked(values[f.name], str(f.type), f"{where}: {f.name}")
        if extra:
            values["extra"] = {**values.get("extra", {}), **extra}
        return cls(**values)


def _checked(value: Any, annotation: str, where: str) -> Any:
    """``value`` when it fits the field's annotation (tuples made from lists), else raise."""
    kind, _, optional = annotation.partition(" | ")
    if optional == "None" and value is None:
        return value
    expected = {
        "str": "a string",
        "int": "an integer",
        "float": "a finite number",
        "bool": "true or false",
        "tuple[float, float, float]": "3 numbers, all finite",
        "Mapping[str, Any]": "a JSON object",
    }.get(kind)
    if expected is None:
        return value
    if kind == "tuple[float, float, float]":
        ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(map(_finite, value))
        value = tuple(value) if ok else value
    elif kind == "float":
        ok = _finite(value)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, {"str": str, "bool": bool, "Mapping[str, Any]": Mapping}[kind])
    if not ok:
        found = json.dumps(value) if _jsonable(value) else repr(value)
        raise InputError(where, f"expected {expected}{' or null' * bool(optional)}, found {found}")
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def check_record(
    record: TumorRecord, where: str, output_labels: LabelMap = OUTPUT_LABELS
) -> TumorRecord:
    """Check what a record's types cannot say before it is rendered or written anywhere.

    The case id is one safe path component, counts and indices are in range, the tumor label is a
    tumor id of ``output_labels``, the radii lie in (0, :data:`MAX_RADIUS_MM`] mm, the shape and
    appearance are objects, the record names its sources, and its ``image_path`` /
    ``label_path`` are the ones the tool derives from the case id and variant (a record's paths
    are data to verify, never a place to write). Raises :class:`InputError` naming ``where`` (the
    manifest line) and the field.

    Examples
    --------
    On a record read from a manifest (not run as a doctest)::

        check_record(record, "manifest.jsonl:3")  # raises InputError("manifest.jsonl:3: ...")
    """
    check_case_id(record.case_id, where=f"{where}: case_id")
    for name, low in (("tumor_index", 0), ("variant", 0), ("n_voxels", 1), ("attempts", 1)):
        if getattr(record, name) < low:
            raise InputError(
                f"{where}: {name}", f"expected an integer >= {low}, found {getattr(record, name)}"
            )
    if record.variant_tumors is not None and record.variant_tumors < 1:
        raise InputError(
            f"{where}: variant_tumors", f"expected an integer >= 1, found {record.variant_tumors}"
        )
    tumor_ids = sorted({i for ids in output_labels.tumors.values() for i in ids})
    if record.tumor_label not in tumor_ids:
        raise InputError(
            f"{where}: tumor_label",
            f"expected a tumor id of the {output_labels.name!r} output labels {tumor_ids}, "
            f"found {record.tumor_label}",
        )
    if not all(0.0 < r <= MAX_RADIUS_MM for r in record.radii_mm):
        raise InputError(
            f"{where}: radii_mm",
            f"expected semi-axes in (0, {MAX_RADIUS_MM:g}] mm, found {list(record.radii_mm)}",
        )
    for name in ("source_image", "source_label", "image_path", "label_path"):
        if not getattr(record, name):
            raise InputError(
                f"{where}: {name}",
                "expected a path, found none; replay needs a batch run's sources and files",
                fix="replay a manifest written by `tumorsynth synthesize`",
            )
    derived = variant_files(record.case_id, record.variant)
    for name, path in zip(("image_path", "label_path"), derived, strict=True):
        if getattr(record, name) != path:
            raise InputError(
                f"{where}: {name}",
                f"expected {path!r} (derived from case_id {record.case_id!r} and variant "
                f"{record.variant}), found {getattr(record, name)!r}; a record's paths are "
                "checked, never written to",
                fix="replay the manifest as the batch wrote it",
            )
    return record


def append_records(manifest: str | os.PathLike[str], records: Iterable[TumorRecord]) -> None:
    """Append records to a JSON-lines manifest in one fsynced write (crash-safe, resumable)."""
    append_lines_durably(manifest, [record.to_json() for record in records])


def read_manifest(path: str | os.PathLike[str]) -> list[TumorRecord]:
    """Read a manifest; a last line cut off by a crash is ignored, any other bad line is an
    error."""
    return [record for _, record in read_numbered_manifest(path)]


def read_numbered_manifest(path: str | os.PathLike[str]) -> list[tuple[str, TumorRecord]]:
    """:func:`read_manifest` with where each record stands: ``("DIR/manifest.jsonl:3", record)``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "manifest does not exist", fix="pass DIR/manifest.jsonl")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            str(path), f"expected UTF-8 JSON lines, found bytes that are not text ({exc.reason})"
        ) from exc
    except OSError as exc:
        raise InputError(str(path), f"cannot read the manifest ({exc.strerror})") from exc
    lines = text.split("\n")
    complete = lines[:-1] if not text.endswith("\n") else lines
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise InputError(
                where, f"expected one JSON record per line, found unparsable text ({exc})"
            ) from exc
        records.append((where, TumorRecord.from_dict(data, where=where)))
    return records


def rewrite_manifest(path: str | os.PathLike[str], records: Iterable[TumorRecord]) -> None:
    """Replace a manifest's content atomically (used to drop a cut-off variant on resume)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(record.to_json() + "\n" for record in records), encoding="utf-8")
