"""Replay a manifest: re-render every tumor from its record, into a new folder, voxel for voxel.

A manifest is shared data ("replay my dataset"), so replay trusts nothing it reads:

- every record is checked whole before anything is written (types, case id, organ, tumor label,
  radii, generator, shape and appearance are objects), duplicate tumors and variants cut short
  are refused, each naming the manifest line and the field;
- every output path is derived here from the record's case id and variant, under ``--out``; a
  record's ``image_path`` / ``label_path`` are data to verify, never a place to write, and no
  output may be an input (a source, the manifest);
- sources are checked against the sha256 the records carry, each tumor is measured again and a
  voxel count or volume that differs from its record is refused before its files are written;
- ``DIR/replay.json`` (the sha256 of the manifest replayed) is written first, so the same command
  run again resumes (finished variants skipped, a variant cut short redone, stray ``.part`` files
  removed) and another manifest cannot mix into the folder.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib

from tumorsynth import __version__
from tumorsynth.errors import InputError
from tumorsynth.generators import TumorGenerator, generator_takes, get_generator
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.io.datasets import CaseRef, read_case_label
from tumorsynth.io.identity import (
    check_outputs_not_inputs,
    sha256_of,
    source_sha256,
    variant_files,
)
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap
from tumorsynth.io.nifti import Volume, load_image, save_volume
from tumorsynth.io.records import (
    MANIFEST_NAME,
    TumorRecord,
    append_records,
    rewrite_manifest,
)
from tumorsynth.io.run_lock import run_lock
from tumorsynth.pipelines.batch import (
    SYNTHETIC_IMAGE_DESCRIPTION,
    BatchOutput,
    progress_bar,
    write_dataset_json,
)
from tumorsynth.pipelines.batch_folder import (
    check_sources_outside,
    complete_records,
    remove_unrecorded,
    warn_if_other_version,
)
from tumorsynth.pipelines.replay_filter import verified_verdict, verifying_filters
from tumorsynth.pipelines.replay_plan import (
    RENDER_ERRORS,
    ReplayVariant,
    error_summary,
    line_of,
    plan_replay,
)
from tumorsynth.pipelines.synthesize import replay_case

if TYPE_CHECKING:
    from tumorsynth.pipelines.tumor_filter import TumorFilter

__all__ = ["REPLAY_INFO", "ReplayOutput", "plan_replay", "replay_manifest"]

#: What a replay folder was made from (``DIR/replay.json``): a rerun must replay the same manifest.
REPLAY_INFO = "replay.json"
#: Records keep volumes to 4 decimals (mL); a re-measured volume may differ by that rounding only.
VOLUME_TOLERANCE_ML = 1e-4


#: What a replay did: the same fields as a batch run's output (records written now, variants
#: done, variants skipped because an earlier, interrupted replay did them).
ReplayOutput = BatchOutput


def replay_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    generator_options: Mapping[str, Mapping[str, Any]] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | None = None,
    verify_filter: bool | str | os.PathLike[str] = False,
) -> ReplayOutput:
    """Re-render every case variant of ``manifest`` into ``out_dir``, checking as it goes.

    Parameters
    ----------
    manifest
        ``DIR/manifest.jsonl`` of a ``synthesize`` run. Every record is checked before any output
        is made (see :func:`plan_replay`); its sources must match the sha256 it carries.
    out_dir
        Output folder (created), never the manifest's own folder. Files are named from each
        record's case id and variant (nnU-Net v2 layout), as the batch named them. A folder that
        holds a failed replay of the same manifest is resumed; one of another manifest is refused.
    generator_options
        Factory options per generator name, over those the records carry.
    checkpoint, device
        For every generator that takes them (learned ones): the model folder, when it moved
        (default: the one the records name; its files must still have the recorded hashes), and
        the device (``auto``, ``cpu``, ``cuda``; default: the generator's own choice).
    verify_filter
        Score the replayed tumors again with the filter their records name (a path: the
        segmentor folder, when it moved); a changed verdict is refused
        (:mod:`.replay_filter`).

    Returns
    -------
    ReplayOutput
        The records written now (measured anew; the new manifest holds them with the sources'
        sha256), and how many variants were done now or skipped as done before.

    Raises
    ------
    InputError
        A record, a source or a re-measured tumor that is not what the manifest says, naming the
        manifest line and the field. A first run that fails leaves no output; a later failure
        leaves the folder consistent (manifest = files) and the same command resumes it.
    """
    manifest = Path(manifest)
    variants = plan_replay(manifest)
    out = Path(out_dir)
    _check_outputs(out, manifest, variants)
    source_hashes = _check_sources(manifest, variants)
    overrides = {"checkpoint": checkpoint, "device": device}
    generators = _generators(variants, generator_options or {}, overrides)
    filters = (
        verifying_filters(variants, None if verify_filter is True else verify_filter)
        if verify_filter
        else []
    )
    manifest_sha = sha256_of(manifest)
    # a failed first run leaves nothing behind; a second run into the folder is refused meanwhile
    with output_dir(out) as folder, run_lock(folder):
        done, created = _open_folder(folder, manifest, manifest_sha)
        try:
            return _replay(variants, done, folder, source_hashes, generators, progress, filters)
        except BaseException:
            if created and not (folder / MANIFEST_NAME).exists():
                (folder / REPLAY_INFO).unlink(missing_ok=True)
            raise


# -- checks before any output ----------------------------------------------------------------------
def _check_outputs(out: Path, manifest: Path, variants: Sequence[ReplayVariant]) -> None:
    """No output is the manifest's folder or an input file (a source, the manifest)."""
    if out.resolve() == manifest.resolve().parent:
        inside = out / MANIFEST_NAME
        raise InputError(
            str(inside if inside.exists() else out),
            f"{'exists already: ' if inside.exists() else ''}--out is the folder of the "
            f"manifest {manifest}; replay writes a new folder beside the run it replays",
            fix="choose an empty --out",
        )
    cases = {v.sources: CaseRef(v.key[0], *map(Path, v.sources)) for v in variants}
    # a resume cleans imagesTr / labelsTr (remove_unrecorded): no source may lie there
    check_sources_outside(out, list(cases.values()))
    outputs = [out / MANIFEST_NAME, out / REPLAY_INFO, out / "dataset.json"]
    outputs += [out / path for v in variants for path in v.files]
    root = out.resolve()
    for path in outputs:
        if not path.resolve().is_relative_to(root):  # e.g. imagesTr a link to elsewhere
            raise InputError(
                str(path),
                f"resolves to {path.resolve()}, outside --out {out}; replay writes under it only",
                fix="choose an empty --out",
            )
    check_outputs_not_inputs(outputs, [manifest, *sorted({s for pair in cases for s in pair})])


def _check_sources(manifest: Path, variants: Sequence[ReplayVariant]) -> dict[str, str]:
    """sha256 of every source (file or folder), checked against the records' where they have one."""
    found: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...] | None] = {}  # variants of one case share a source
    unverified: set[str] = set()
    for v in variants:
        first = v.records[0]
        hashes = (first.source_image_sha256, first.source_label_sha256)
        for path, expected, role in zip(
            v.sources, hashes, ("source_image", "source_label"), strict=True
        ):
            if path not in found:
                if not Path(path).exists():
                    raise InputError(
                        path,
                        f"{role} of {v.name} ({v.wheres[0]}) does not exist",
                        fix="replay where the sources the batch read are, at the same paths",
                    )
                found[path] = source_sha256(path)
            if role == "source_image":
                if path not in shapes:
                    shapes[path] = _header_shape(path)
                _check_centres(v, path, shapes[path])
            if expected is None:
                unverified.add(path)
            elif found[path] != expected:
                raise InputError(
                    path,
                    f"{role} of {v.name} ({v.wheres[0]}) has sha256 {found[path][:12]}..., the "
                    f"record expects {expected[:12]}...: not the file the tumors were made in",
                    fix="replay with the sources the batch read",
                )
    if unverified:
        warnings.warn(
            f"{manifest}: {len(unverified)} sources of its records carry no sha256 (a manifest "
            "written before tumorsynth recorded them); they are replayed unverified",
            stacklevel=3,
        )
    return found


#: The generators of one variant, by name (what :func:`replay_case` takes).
_VariantGenerators = dict[str, TumorGenerator]


def _generators(
    variants: Sequence[ReplayVariant],
    options: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any],
) -> dict[tuple[str, int], _VariantGenerators]:
    """The generators of every variant, each rebuilt once from the options its records carry
    (``options`` and the ``overrides`` it takes on top), its version checked.

    Raises :class:`InputError` for an override no generator of the manifest takes, and for a
    variant whose records rebuild one generator name two ways.
    """
    built: dict[tuple[str, str], TumorGenerator] = {}
    out: dict[tuple[str, int], _VariantGenerators] = {}
    for v in variants:
        mine: _VariantGenerators = {}
        for where, record in zip(v.wheres, v.records, strict=True):
            name = record.generator
            key = (name, json.dumps(record.generator_options, sort_keys=True))
            if key not in built:
                taken = {
                    option: value
                    for option, value in overrides.items()
                    if value is not None and generator_takes(name, option)
                }
                built[key] = get_generator(
                    name, **{**record.generator_options, **options.get(name, {}), **taken}
                )
            if mine.setdefault(name, built[key]) is not built[key]:
                raise InputError(
                    f"{where}: generator_options",
                    f"expected the {name} options of {v.name}'s other tumors, found "
                    f"{dict(record.generator_options)}",
                    fix="replay the manifest as the batch wrote it",
                )
            version = built[key].version
            if version != record.generator_version:
                raise InputError(
                    f"{where}: generator_version",
                    f"tumor was made by {record.generator} {record.generator_version}, this is "
                    f"{version}; replay would not be exact",
                    fix="replay with the generator (and checkpoint) the records name",
                )
        out[v.key] = mine
    if overrides.get("checkpoint") is not None and not any(
        generator_takes(name, "checkpoint") for name, _ in built
    ):
        raise InputError(
            "checkpoint",
            "expected a manifest of a generator that takes a checkpoint, found generators "
            f"{sorted({name for name, _ in built})}",
        )
    return out


# -- the output folder: start or resume ------------------------------------------------------------
def _open_folder(
    folder: Path, manifest: Path, manifest_sha: str
) -> tuple[set[tuple[str, int]], bool]:
    """Start a replay folder (``replay.json`` first) or resume one of the same manifest.

    Returns the variants already finished and whether this call started the folder.
    """
    info = folder / REPLAY_INFO
    if info.exists():
        try:
            found = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict) or found.get("manifest_sha256") != manifest_sha:
            recorded = found if isinstance(found, dict) else {}
            raise InputError(
                str(info),
                f"this folder holds a replay of another manifest ({recorded.get('manifest')}, "
                f"sha256 {str(recorded.get('manifest_sha256'))[:12]}...); replaying {manifest} "
                f"(sha256 {manifest_sha[:12]}...) into it would mix two replays",
                fix="use another --out",
            )
        warn_if_other_version(info, found.get("tumorsynth_version"), what="replay", stacklevel=4)
        return _finished_variants(folder), False
    if (folder / MANIFEST_NAME).exists():
        raise InputError(
            str(folder / MANIFEST_NAME),
            f"exists already and the folder holds no {REPLAY_INFO}; replay writes a fresh folder "
            "(or resumes its own)",
            fix="choose an empty --out",
        )
    for sub in ("imagesTr", "labelsTr"):
        if (folder / sub).is_dir() and any((folder / sub).iterdir()):
            raise InputError(
                str(folder / sub),
                "holds files that replay did not write; they would mix with the replayed cases",
                fix="choose an empty --out",
            )
    data = {
        "manifest": str(manifest.resolve()),
        "manifest_sha256": manifest_sha,
        "tumorsynth_version": __version__,
    }
    with atomic_path(info) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return set(), True


def _finished_variants(folder: Path) -> set[tuple[str, int]]:
    """Variants whose records are all in the folder's manifest and whose files exist.

    As a batch resumes: a variant cut short (or whose files are gone) is dropped from the manifest
    (atomically), and files the manifest does not list and stray ``.part`` files of a killed run
    are removed, so each such variant is redone once.
    """
    manifest = folder / MANIFEST_NAME
    records = complete_records(manifest)
    done = {
        key
        for key in {(r.case_id, r.variant) for r in records}
        if all((folder / path).is_file() for path in variant_files(*key))
    }
    kept = [r for r in records if (r.case_id, r.variant) in done]
    if len(kept) < len(records):
        rewrite_manifest(manifest, kept)
    remove_unrecorded(folder, kept)
    return done


# -- rendering -------------------------------------------------------------------------------------
def _replay(
    variants: Sequence[ReplayVariant],
    done: set[tuple[str, int]],
    folder: Path,
    source_hashes: Mapping[str, str],
    generators: Mapping[tuple[str, int], Mapping[str, TumorGenerator]],
    progress: bool,
    filters: Sequence[TumorFilter] = (),
) -> ReplayOutput:
    todo = [v for v in variants if v.key not in done]
    result = ReplayOutput(folder, variants_skipped=len(variants) - len(todo))
    bar = progress_bar(len(todo), progress)
    loaded: tuple[tuple[str, str], Volume, Volume] | None = None
    try:
        for v in todo:
            if loaded is None or loaded[0] != v.sources:  # variants of one case share a load
                image = load_image(v.sources[0])
                loaded = (v.sources, image, read_case_label(Path(v.sources[1]), v.label_map, image))
            records = _replay_variant(
                v, loaded[1], loaded[2], folder, source_hashes, generators[v.key], filters
            )
            append_records(folder / MANIFEST_NAME, records)
            result.records.extend(records)
            result.variants_done += 1
            bar.update(1)
    finally:
        bar.close()
    write_dataset_json(folder, OUTPUT_LABELS)
    return result


def _replay_variant(
    v: ReplayVariant,
    image: Volume,
    label: Volume,
    folder: Path,
    source_hashes: Mapping[str, str],
    generators: Mapping[str, TumorGenerator],
    filters: Sequence[TumorFilter] = (),
) -> list[TumorRecord]:
    """Render one variant, re-measure its tumors against their records, then write its files."""
    _check_centres(v, str(image.path), image.shape)
    try:
        result = _render(v.records, image, label, v.label_map, generators, filters)
    except InputError:
        raise
    except RENDER_ERRORS as exc:
        raise _render_failure(v, exc, image, label, generators) from exc
    for where, old, new in zip(v.wheres, v.records, result.records, strict=True):
        if new.n_voxels != old.n_voxels:
            raise InputError(
                f"{where}: n_voxels",
                f"the replayed tumor has {new.n_voxels} voxels, the record {old.n_voxels}; the "
                "record, the sources or the generator are not what made it",
                fix="replay the manifest as the batch wrote it, with its sources and generator",
            )
        if round(abs(new.volume_ml - old.volume_ml), 9) > VOLUME_TOLERANCE_ML:
            raise InputError(
                f"{where}: volume_ml",
                f"the replayed tumor measures {new.volume_ml} mL, the record {old.volume_ml} mL",
                fix="replay the manifest as the batch wrote it, with its sources",
            )
    verdicts = [
        verified_verdict(where, old, new)
        for where, old, new in zip(v.wheres, v.records, result.records, strict=True)
    ]
    image_rel, label_rel = v.files
    save_volume(
        image, folder / image_rel, array=result.image, description=SYNTHETIC_IMAGE_DESCRIPTION
    )
    try:
        save_volume(label, folder / label_rel, array=result.label)
    except BaseException:
        (folder / image_rel).unlink(missing_ok=True)  # no image without its label
        raise
    return [
        replace(
            new,
            image_path=image_rel,
            label_path=label_rel,
            source_image=old.source_image,
            source_label=old.source_label,
            source_image_sha256=source_hashes[v.sources[0]],
            source_label_sha256=source_hashes[v.sources[1]],
            variant=old.variant,
            variant_tumors=len(v.records),
            attempts=old.attempts,
            filter_verdict=verdict,
        )
        for old, new, verdict in zip(v.records, result.records, verdicts, strict=True)
    ]


def _render(
    records: Sequence[TumorRecord],
    image: Volume,
    label: Volume,
    label_map: LabelMap,
    generators: Mapping[str, TumorGenerator],
    filters: Sequence[TumorFilter] = (),
) -> Any:
    return replay_case(
        image.array,
        label.array,
        records,
        spacing_mm=image.spacing_mm,
        label_map=label_map,
        affine=image.affine,
        where=str(image.path),
        generators=generators,
        filters=filters,
    )


def _check_centres(v: ReplayVariant, source: str, shape: tuple[int, ...] | None) -> None:
    """Every centre inside the volume (``0 <= c <= n - 1`` per axis); no shape, no check."""
    if shape is None or len(shape) != 3:
        return
    for where, record in zip(v.wheres, v.records, strict=True):
        if not all(0.0 <= c <= n - 1 for c, n in zip(record.center_vox, shape, strict=True)):
            raise InputError(
                f"{where}: center_vox",
                f"expected a centre inside the volume of {source} (shape {tuple(shape)}, "
                f"0 <= c <= n - 1 per axis), found {list(record.center_vox)}",
            )


def _header_shape(path: str) -> tuple[int, ...] | None:
    """A NIfTI source's grid from its header alone (cheap: no voxels read), else None."""
    if not path.endswith((".nii", ".nii.gz")) or not Path(path).is_file():
        return None
    try:
        shape = tuple(int(n) for n in nib.load(path).shape)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is loaded
        return None
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _render_failure(
    v: ReplayVariant,
    exc: BaseException,
    image: Volume,
    label: Volume,
    generators: Mapping[str, TumorGenerator],
) -> InputError:
    """Name the record whose spec the generator could not render (each tried alone)."""
    for where, record in zip(v.wheres, v.records, strict=True):
        try:
            _render([record], image, label, v.label_map, generators)
        except RENDER_ERRORS as alone:
            if not isinstance(alone, InputError):
                return InputError(
                    f"{where}: appearance",
                    f"{record.generator} cannot render this tumor ({error_summary(alone)}); "
                    "expected a complete appearance spec as the generator drew it",
                    fix="replay the manifest as the batch wrote it",
                )
    return InputError(
        f"{v.wheres[0]}",
        f"{v.name} (lines {', '.join(map(line_of, v.wheres))}) cannot be rendered "
        f"({error_summary(exc)})",
        fix="replay the manifest as the batch wrote it",
    )
