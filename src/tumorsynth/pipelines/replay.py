"""Replay a manifest: re-render every tumor from its record, into a new folder, voxel for voxel."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tumorsynth.errors import InputError
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.io.atomic import output_dir
from tumorsynth.io.datasets import read_case_label
from tumorsynth.io.label_maps import OUTPUT_LABELS, resolve_label_map
from tumorsynth.io.nifti import load_image, save_volume
from tumorsynth.io.records import MANIFEST_NAME, TumorRecord, append_records, read_manifest
from tumorsynth.pipelines.batch import progress_bar, write_dataset_json
from tumorsynth.pipelines.synthesize import replay_case

__all__ = ["replay_manifest"]


def replay_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    generator_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[TumorRecord]:
    """Re-render every case variant of ``manifest`` into ``out_dir`` with the same file names.

    Sources are read from the records' ``source_image`` / ``source_label``; the new manifest
    lists the re-rendered records (measured anew, so any drift would show).
    ``generator_options`` gives factory options per generator name (the diffusion generator's
    checkpoint defaults to the path its records name).
    """
    records = read_manifest(manifest)
    generators = _generators(records, generator_options or {})
    if (Path(out_dir) / MANIFEST_NAME).exists():
        raise InputError(
            str(Path(out_dir) / MANIFEST_NAME),
            "exists already; replay writes a fresh folder",
            fix="choose an empty --out",
        )
    groups: dict[str, list[TumorRecord]] = defaultdict(list)
    for record in records:
        if not (
            record.image_path and record.label_path and record.source_image and record.source_label
        ):
            raise InputError(
                f"{manifest}",
                f"record {record.case_id}#{record.tumor_index} lacks "
                "image/label/source paths; it was not written by a batch run",
            )
        groups[record.image_path].append(record)
    with output_dir(out_dir) as out:
        return _replay_groups(groups, out, progress, generators)


def _generators(
    records: list[TumorRecord], options: Mapping[str, Mapping[str, Any]]
) -> dict[str, TumorGenerator]:
    """One generator per name the records use; a learned one loads its checkpoint once."""
    out: dict[str, TumorGenerator] = {}
    for record in records:
        if record.generator in out:
            continue
        opts = dict(options.get(record.generator, {}))
        if record.generator == "diffusion" and not opts.get("checkpoint"):
            opts["checkpoint"] = record.appearance.get("checkpoint") or None
        out[record.generator] = get_generator(record.generator, **opts)
    return out


def _replay_groups(
    groups: dict[str, list[TumorRecord]],
    out: Path,
    progress: bool,
    generators: Mapping[str, TumorGenerator],
) -> list[TumorRecord]:
    bar = progress_bar(len(groups), progress)
    replayed: list[TumorRecord] = []
    try:
        for image_path, group in groups.items():
            first = group[0]
            label_map = resolve_label_map(first.label_map or "totalsegmentator")
            image = load_image(first.source_image)  # type: ignore[arg-type]
            label = read_case_label(Path(first.source_label), label_map, image)  # type: ignore[arg-type]
            result = replay_case(
                image.array,
                label.array,
                group,
                spacing_mm=image.spacing_mm,
                label_map=label_map,
                affine=image.affine,
                where=str(image.path),
                generators=generators,
            )
            save_volume(image, out / image_path, array=result.image)
            save_volume(label, out / str(first.label_path), array=result.label)
            new = [r.with_paths(variant=old.variant) for r, old in zip(result.records, group)]
            append_records(out / MANIFEST_NAME, new)
            replayed.extend(new)
            bar.update(1)
    finally:
        bar.close()
    write_dataset_json(out, OUTPUT_LABELS)
    return replayed
