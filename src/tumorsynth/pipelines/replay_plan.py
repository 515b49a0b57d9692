"""Read and check a whole replay manifest before anything is written: every record's fields
(:func:`tumorsynth.io.records.check_record`), its organ and generator, its shape spec, no tumor
twice, every variant complete and consistent. Errors name the manifest line and the field."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.generators import registered_generators
from tumorsynth.io.identity import variant_files, variant_name
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map
from tumorsynth.io.records import (
    MAX_RADIUS_MM,
    TumorRecord,
    check_record,
    read_numbered_manifest,
)
from tumorsynth.organs import registered_organs
from tumorsynth.pipelines.synthesize import TumorSpec

__all__ = ["RENDER_ERRORS", "ReplayVariant", "error_summary", "line_of", "plan_replay"]

#: What a generator raises on a spec it cannot render (a missing key, a wrong type).
RENDER_ERRORS = (KeyError, TypeError, ValueError, IndexError)


@dataclass
class ReplayVariant:
    """One case variant of a manifest, checked: its records in tumor order, where each stands."""

    wheres: list[str]
    records: list[TumorRecord]
    label_map: LabelMap

    @property
    def key(self) -> tuple[str, int]:
        return self.records[0].case_id, self.records[0].variant

    @property
    def name(self) -> str:
        return variant_name(*self.key)

    @property
    def files(self) -> tuple[str, str]:
        """Image and label paths under ``--out``, derived from the case id and variant."""
        return variant_files(*self.key)

    @property
    def sources(self) -> tuple[str, str]:
        return str(self.records[0].source_image), str(self.records[0].source_label)


def plan_replay(
    manifest: str | os.PathLike[str], output_labels: LabelMap = OUTPUT_LABELS
) -> list[ReplayVariant]:
    """Read and check a whole manifest; its case variants in manifest order.

    Each record passes :func:`tumorsynth.io.records.check_record`; its organ and generator are
    registered, its shape spec is complete and agrees with its centre and radii; no tumor
    (case id, variant, tumor index) appears twice; each variant holds tumors ``0..n-1`` of the
    ``variant_tumors`` it records, all from the same sources and label map.

    Examples
    --------
    On a manifest that ``tumorsynth synthesize`` wrote (not run as a doctest)::

        [v.name for v in plan_replay("synth/manifest.jsonl")]
        # ['liver_7_syn0', 'liver_7_syn1']
    """
    manifest = Path(manifest)
    numbered = read_numbered_manifest(manifest)
    if not numbered:
        raise InputError(str(manifest), "holds no tumor records; nothing to replay")
    organs, generators = registered_organs(), registered_generators()
    seen: dict[tuple[str, int, int], str] = {}
    groups: dict[tuple[str, int], list[tuple[str, TumorRecord]]] = {}
    for where, record in numbered:
        check_record(record, where, output_labels)
        if record.organ not in organs:
            raise InputError(
                f"{where}: organ", f"expected one of {list(organs)}, found {record.organ!r}"
            )
        if record.generator not in generators:
            raise InputError(
                f"{where}: generator",
                f"expected a registered generator {list(generators)}, found {record.generator!r}",
            )
        expected_label = output_labels.tumor_ids(record.organ)
        if expected_label and record.tumor_label not in expected_label:
            raise InputError(
                f"{where}: tumor_label",
                f"expected the {record.organ} tumor id {expected_label[0]} of the "
                f"{output_labels.name!r} output labels, found {record.tumor_label}",
            )
        _check_shape(record, where, output_labels)
        key = (record.case_id, record.variant, record.tumor_index)
        if key in seen:
            raise InputError(
                where,
                f"tumor #{record.tumor_index} of {variant_name(*key[:2])} is recorded twice "
                f"(lines {line_of(seen[key])} and {line_of(where)})",
                fix="a manifest holds each tumor once; were two runs written into one folder?",
            )
        seen[key] = where
        groups.setdefault(key[:2], []).append((where, record))
    return [_variant(manifest, group) for group in groups.values()]


def line_of(where: str) -> str:
    return where.rpartition(":")[2]


def _check_shape(record: TumorRecord, where: str, output_labels: LabelMap) -> None:
    """The shape spec renders (complete, finite) and describes the tumor the record describes."""
    try:
        spec = TumorSpec.from_record(record, output_labels)
    except InputError as exc:
        raise InputError(f"{where}: organ", exc.message) from exc
    except RENDER_ERRORS as exc:
        raise InputError(
            f"{where}: shape",
            f"expected a complete shape spec, found one that fails ({error_summary(exc)})",
        ) from exc
    shape = spec.shape
    for f in fields(shape):
        value = getattr(shape, f.name)
        if f.name == "satellites":
            value = [(*s.offset_mm, s.radius_mm) for s in value]
        if f.name == "lobes":
            value = [(*lobe.offset_mm, lobe.scale) for lobe in value]
        if f.name in ("mass_effect_resampling", "wall"):
            continue  # a name, and a wall spec that checks its own numbers (WallSpec)
        ok = isinstance(value, bool) if f.name == "exophytic" else _all_finite(value)
        if not ok:
            raise InputError(f"{where}: shape.{f.name}", f"expected finite numbers, found {value}")
    if len(shape.rotation) != 9 or any(len(s.offset_mm) != 3 for s in shape.satellites):
        raise InputError(
            f"{where}: shape",
            "expected a rotation of 9 numbers and satellite offsets of 3, found rotation "
            f"{list(shape.rotation)}, offsets {[list(s.offset_mm) for s in shape.satellites]}",
        )
    if tuple(shape.center_vox) != tuple(record.center_vox):
        raise InputError(
            f"{where}: shape.center_vox",
            f"expected the record's center_vox {list(record.center_vox)}, "
            f"found {list(shape.center_vox)}",
        )
    radii = np.asarray(shape.radii_mm, dtype=float)
    if radii.shape != (3,) or not np.all((radii > 0) & (radii <= MAX_RADIUS_MM)):
        raise InputError(
            f"{where}: shape.radii_mm",
            f"expected 3 semi-axes in (0, {MAX_RADIUS_MM:g}] mm, found {list(shape.radii_mm)}",
        )
    if np.max(np.abs(radii - np.asarray(record.radii_mm))) > 1e-3:
        raise InputError(
            f"{where}: shape.radii_mm",
            f"expected the record's radii_mm {list(record.radii_mm)} (to 0.001 mm), "
            f"found {list(shape.radii_mm)}",
        )


def _all_finite(value: Any) -> bool:
    """A number (not a bool) or a nest of lists/tuples of them, all finite."""
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _variant(manifest: Path, group: list[tuple[str, TumorRecord]]) -> ReplayVariant:
    """A variant's records in tumor order: complete, and agreeing on sources and label map."""
    group = sorted(group, key=lambda item: item[1].tumor_index)
    wheres, records = [w for w, _ in group], [r for _, r in group]
    first = records[0]
    name = variant_name(first.case_id, first.variant)
    for where, record in group[1:]:
        for key in (
            "source_image",
            "source_label",
            "source_image_sha256",
            "source_label_sha256",
            "label_map",
            "variant_tumors",
        ):
            if getattr(record, key) != getattr(first, key):
                raise InputError(
                    f"{where}: {key}",
                    f"expected the value of {name}'s other tumors (line {line_of(wheres[0])}): "
                    f"{getattr(first, key)!r}, found {getattr(record, key)!r}",
                )
    expected = first.variant_tumors if first.variant_tumors is not None else len(records)
    indices = [r.tumor_index for r in records]
    if len(records) != expected or indices != list(range(expected)):
        present = set(indices)
        shown = min(expected, len(records) + 20)  # a hostile count must not build a huge list
        missing = [i for i in range(shown) if i not in present]
        more = "..." if shown < expected else ""
        beyond = sorted(i for i in present if i >= expected)
        raise InputError(
            f"{manifest}: {name}",
            f"expected tumors 0..{expected - 1} ({expected} recorded in variant_tumors), found "
            f"{indices} on lines {', '.join(map(line_of, wheres))}"
            + (f"; missing {missing}{more}: the manifest was cut mid-variant" if missing else "")
            + (f"; {beyond} beyond the count" if beyond else ""),
            fix="replay the whole manifest the batch wrote (rerun the batch to finish it)",
        )
    try:
        label_map = resolve_label_map(first.label_map or "totalsegmentator")
    except InputError as exc:
        raise InputError(f"{wheres[0]}: label_map", exc.message) from exc
    return ReplayVariant(wheres, records, label_map)


def error_summary(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}" if exc.args else "a missing key"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
