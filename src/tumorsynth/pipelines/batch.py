"""Synthesize tumors into files: one case or a whole dataset, resumable, with workers.

Output layout (nnU-Net v2 raw, so it trains as is)::

    DIR/imagesTr/<case>_syn<k>_0000.nii.gz   image with tumors (input dtype, affine, header)
    DIR/labelsTr/<case>_syn<k>.nii.gz        label in the output convention
    DIR/manifest.jsonl                       one JSON record per tumor
    DIR/dataset.json                         nnU-Net v2 dataset description
    DIR/run.json                             the settings of the run (a resume must match)
    DIR/previews/<case>_syn<k>.png           optional PNG montages

Every file is written atomically; a variant's records reach the manifest only after both of its
files are in place, so an interrupted run resumes where it stopped without duplicates. A run holds
the folder's lock (``DIR/.tumorsynth.lock``) from start to end, writes ``run.json`` before its first
case, checks the sources of the cases already done, and keeps the folder's files exactly the
manifest's (:mod:`.batch_folder`); workers die with their parent (:mod:`.batch_pool`). Cases run
in this process, in ``workers`` processes (:mod:`.batch_pool`) or on a Dask cluster
(:mod:`.batch_dask`); whatever runs them, this process alone writes the manifest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tumorsynth import DEFAULT_GENERATOR, __version__
from tumorsynth._types import derive_seed
from tumorsynth.errors import InputError
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.io.datasets import CaseRef, read_case_label
from tumorsynth.io.identity import source_bytes, source_sha256, variant_files, variant_name
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map
from tumorsynth.io.nifti import load_image, load_volume, save_volume
from tumorsynth.io.records import (
    MANIFEST_NAME,
    TumorRecord,
    append_records,
    check_record,
    read_manifest,
    read_numbered_manifest,
)
from tumorsynth.io.run_lock import run_lock
from tumorsynth.pipelines.batch_dask import DaskExecutor, check_dask, dask_executor
from tumorsynth.pipelines.batch_folder import (
    RUN_NAME,
    check_new_run_folder,
    check_run_settings,
    check_sources,
    check_sources_outside,
    complete_records,
    remove_unrecorded,
    write_run_settings,
)
from tumorsynth.pipelines.batch_pool import (
    RunTerminated,
    run_pool,
    signals_deferred,
    stop_on_sigterm,
)
from tumorsynth.pipelines.case_check import check_case_inputs
from tumorsynth.pipelines.filter_settings import LEFT_OUT_KEY, FilterSettings, acceptance_table
from tumorsynth.pipelines.synthesize import TumorRequest, check_exclusion, synthesize_case
from tumorsynth.previews import save_png
from tumorsynth.previews_wall import render_record_montage

#: The NIfTI header description of every synthetic image (a replay writes the same bytes).
SYNTHETIC_IMAGE_DESCRIPTION = f"tumorsynth {__version__} synthetic tumors"

__all__ = [
    "BatchOutput",
    "BatchSettings",
    "RunTerminated",
    "preview_manifest",
    "progress_bar",
    "run_batch",
    "synthesize_files",
    "variant_name",
    "write_dataset_json",
    "write_preview",
]


@dataclass(frozen=True)
class BatchSettings:
    """What to synthesize into every case (JSON-able; stored in ``DIR/run.json``)."""

    requests: tuple[TumorRequest, ...]
    #: Preset name, JSON file or mapping; required (no default: ids mean different organs in
    #: different datasets), checked against every case's label before synthesis.
    label_map: str | dict[str, Any] = ""
    generator: str = DEFAULT_GENERATOR
    seed: int = 0
    per_case: int = 1
    preview: bool = False
    #: Factory options of the generator, e.g. ``{"checkpoint": "runs/diffusion/model"}``.
    generator_options: dict[str, Any] = field(default_factory=dict)
    #: Label ids of the input labels (real tumors, cysts) that tumors keep
    #: ``exclude_margin_mm`` (mm) from; see :func:`~tumorsynth.pipelines.synthesize_case`.
    exclude_labels: tuple[int, ...] = ()
    exclude_margin_mm: float = 0.0
    #: Quality filters (segmentors) that judge every tumor; None: no filter.
    filter: FilterSettings | None = None

    def __post_init__(self) -> None:
        ids = check_exclusion(
            self.exclude_labels,
            self.exclude_margin_mm,
            names=("--exclude-label", "--exclude-margin-mm"),
        )
        object.__setattr__(self, "exclude_labels", ids)
        object.__setattr__(self, "exclude_margin_mm", float(self.exclude_margin_mm))

    def make_generator(self) -> TumorGenerator:
        """The generator, built once per process (a learned one loads its weights once)."""
        return _cached_generator(self.generator, json.dumps(self.generator_options, sort_keys=True))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requests"] = [asdict(r) for r in self.requests]
        data["exclude_labels"] = list(self.exclude_labels)
        data["filter"] = None if self.filter is None else self.filter.to_json()
        # Settings added after the first runs stay out of run.json while they hold their
        # defaults, so a folder started before they existed still resumes.
        for name, default in _LATER_SETTINGS.items():
            if data[name] == default:
                del data[name]
        return data

    def check_exclusion(self, where: str = "--exclude-label") -> None:
        """Refuse excluded ids that are an organ the requests put tumors into (by the label
        map), before any case is read."""
        if not self.exclude_labels:
            return
        label_map = self.resolved_label_map()
        for request in self.requests:
            own = sorted(set(self.exclude_labels) & set(label_map.organ_ids(request.organ)))
            if own:
                raise InputError(
                    where,
                    f"label id(s) {own} are the {request.organ} itself in label map "
                    f"{label_map.name!r}; tumors go into the organ",
                    fix="exclude the ids of lesions (tumors, cysts), not of the organ",
                )

    def resolved_label_map(self) -> LabelMap:
        if not self.label_map:
            raise InputError(
                "label_map",
                "is required: label ids mean different organs in different datasets",
                fix='pass a preset such as "totalsegmentator" or "msd", or a mapping',
            )
        return resolve_label_map(self.label_map)


#: BatchSettings fields added after the first runs, with their defaults (see ``to_json``).
_LATER_SETTINGS: dict[str, Any] = {
    "exclude_labels": [],
    "exclude_margin_mm": 0.0,
    "filter": None,
}


@dataclass
class BatchOutput:
    """What a batch run did: records written now, variants skipped because they were done."""

    out_dir: Path
    records: list[TumorRecord] = field(default_factory=list)
    variants_done: int = 0
    variants_skipped: int = 0


def run_batch(
    cases: Sequence[CaseRef],
    out_dir: str | os.PathLike[str],
    settings: BatchSettings,
    *,
    workers: int = 1,
    dask: str | None = None,
    progress: bool = True,
    on_case: Callable[[str, list[TumorRecord]], None] | None = None,
) -> BatchOutput:
    """Synthesize ``settings.per_case`` variants of every case into ``out_dir``, resuming.

    Parameters
    ----------
    cases
        Cases to process (see :func:`tumorsynth.io.datasets.discover_cases`).
    out_dir
        Output folder (created). It is locked for the run: a second run into it is refused. A
        folder that holds a run with other settings, or whose done cases came from sources that
        changed since, is refused.
    workers
        Processes; 1 runs in this process. Results do not depend on the worker count: each
        variant's seed derives from the run seed, the case id and the variant number. Workers
        die with this process, however it dies.
    dask
        Run the cases on a Dask cluster instead (needs ``tumorsynth[dask]``): ``"local:N"`` for
        N worker processes on this host, ``"tcp://HOST:PORT"`` for a running scheduler whose
        workers see ``out_dir`` at the same path (:mod:`.batch_dask`). The cluster is reached
        before any output; not together with ``workers > 1``.

    Raises
    ------
    InputError
        Bad input (names the file); finished variants stay valid and a rerun resumes.
    OutputError
        The folder is locked by another run, or not writable, or the disk is full (names the
        file being written); the folder keeps exactly the recorded variants.
    RunTerminated
        SIGTERM arrived (main thread only): the run stopped cleanly, exit status 143.
    KeyboardInterrupt
        Ctrl-C: the run stopped cleanly; a rerun resumes.
    """
    if dask is not None:
        check_dask(dask, workers=workers)
    settings.resolved_label_map()  # a missing or unreadable map fails before any output
    settings.check_exclusion()
    if settings.filter is not None:  # every segmentor loads (hashes checked) before any output
        settings.filter.check([r.organ for r in settings.requests])
    try:
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(dask_executor(dask)) if dask is not None else None
            with output_dir(out_dir) as out, run_lock(out), stop_on_sigterm():
                return _run_batch(cases, out, settings, workers, progress, on_case, cluster)
    except RunTerminated:
        print(
            f"tumorsynth: stopped by SIGTERM; finished case variants are recorded in "
            f"{Path(out_dir) / MANIFEST_NAME}, rerun the same command to resume",
            file=sys.stderr,
        )
        raise


def _run_batch(
    cases: Sequence[CaseRef],
    out: Path,
    settings: BatchSettings,
    workers: int,
    progress: bool,
    on_case: Callable[[str, list[TumorRecord]], None] | None,
    cluster: DaskExecutor | None = None,
) -> BatchOutput:
    check_sources_outside(out, cases)
    resumed = check_run_settings(out, settings.to_json())
    if not resumed:
        check_new_run_folder(out)
    manifest = out / MANIFEST_NAME
    finished = complete_records(manifest)
    check_sources(cases, finished, threads=workers)
    done = {(r.case_id, r.variant) for r in finished}
    todo: list[tuple[CaseRef, list[int]]] = []
    result = BatchOutput(out)
    for case in cases:
        pending = [k for k in range(settings.per_case) if (case.case_id, k) not in done]
        result.variants_skipped += settings.per_case - len(pending)
        if pending:
            todo.append((case, pending))
    bar = progress_bar(sum(len(v) for _, v in todo), progress)

    def record(records: list[TumorRecord]) -> None:
        append_records(manifest, records)
        result.records.extend(records)
        result.variants_done += 1
        bar.update(1)

    def finish(job: tuple[CaseRef, list[int]], outcome: _CaseOutcome) -> None:
        produced, error = outcome
        with signals_deferred(redeliver=True):  # a finished case is recorded whole
            for _, records in produced:
                record(records)
        if error is not None:
            raise error
        if on_case is not None:
            on_case(job[0].case_id, [r for _, recs in produced for r in recs])

    try:
        if not resumed:
            write_run_settings(out, settings.to_json())  # before the first case starts
        remove_unrecorded(out, finished)
        job = functools.partial(_synthesize_job, out=out, settings=settings)
        if cluster is not None:
            cluster(todo, job, finish, describe=lambda j: str(j[0].image))
        elif workers > 1 and len(todo) > 1:
            run_pool(todo, job, workers, finish, describe=lambda j: str(j[0].image))
        else:
            for case, variants in todo:
                produced = synthesize_files(
                    case, out, settings, variants, on_variant=lambda _, recs: record(recs)
                )
                if on_case is not None:
                    on_case(case.case_id, [r for _, recs in produced for r in recs])
        # A writer killed mid-case (a Dask worker, whose case ran again elsewhere) leaves its
        # temporary files; every writer is done now.
        remove_unrecorded(out, [*finished, *result.records])
    except BaseException:
        bar.close()
        with signals_deferred():
            _stop_consistently(out, created_run_json=not resumed)
        raise
    bar.close()
    write_dataset_json(out, OUTPUT_LABELS)
    if settings.filter is not None:
        write_filter_summary(out, complete_records(manifest, repair=False))
    return result


#: Per organ and size class, how a run's filter judged its tumors (:func:`acceptance_table`).
FILTER_SUMMARY = "filter_summary.json"


def write_filter_summary(out: Path, records: Sequence[TumorRecord]) -> Path:
    """``out/filter_summary.json``: the acceptance table of every recorded variant."""
    path = out / FILTER_SUMMARY
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(acceptance_table(records), indent=2) + "\n", encoding="utf-8")
    return path


#: What a worker returns for one case: the variants it wrote, and the error that stopped it.
_CaseOutcome = tuple[list[tuple[int, list[TumorRecord]]], "BaseException | None"]


def _synthesize_job(
    job: tuple[CaseRef, list[int]], *, out: Path, settings: BatchSettings
) -> _CaseOutcome:
    """One case in a worker: variants finished before an error still reach the manifest."""
    case, variants = job
    produced: list[tuple[int, list[TumorRecord]]] = []
    try:
        synthesize_files(
            case, out, settings, variants, on_variant=lambda k, recs: produced.append((k, recs))
        )
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
        return produced, exc
    return produced, None


def _stop_consistently(out: Path, *, created_run_json: bool) -> None:
    """After a failed or interrupted run (its writers gone): keep only the recorded variants.

    Best effort (the disk may be full): whatever this leaves, the next run's start removes, and
    the error that stopped the run is the one reported.
    """
    with contextlib.suppress(Exception):
        manifest = out / MANIFEST_NAME
        try:
            records = complete_records(manifest)
        except OSError:
            records = complete_records(manifest, repair=False)
        remove_unrecorded(out, records)
        if records:
            write_dataset_json(out, OUTPUT_LABELS)
        elif created_run_json:  # a first run that finished nothing leaves nothing behind
            for name in (RUN_NAME, MANIFEST_NAME, "dataset.json"):
                (out / name).unlink(missing_ok=True)


def synthesize_files(
    case: CaseRef,
    out_dir: Path,
    settings: BatchSettings,
    variants: Sequence[int],
    *,
    on_variant: Callable[[int, list[TumorRecord]], None] | None = None,
) -> list[tuple[int, list[TumorRecord]]]:
    """Load one case once, write each requested variant's image and label (and preview).

    ``on_variant(k, records)`` runs as soon as variant ``k``'s files are in place, so a caller
    records it even when a later variant fails. Records pin the sources by content
    (``source_image_sha256``, ``source_label_sha256``, sizes in ``extra["source_bytes"]``).
    """
    label_map = settings.resolved_label_map()
    if case.label is None:
        raise InputError(
            str(case.image),
            "has no label; tumors are placed by the organ mask",
            fix="give --label or a dataset with labels",
        )
    image = load_image(case.image)
    label = read_case_label(case.label, label_map, image)
    check_case_inputs(image, label, label_map, settings.requests, where=str(case.label))
    image_sha256, label_sha256, sizes = _source_pins(case.image, case.label)  # files just read
    produced = []
    for k in variants:
        name = variant_name(case.case_id, k)
        out = synthesize_case(
            image.array,
            label.array,
            spacing_mm=image.spacing_mm,
            label_map=label_map,
            requests=settings.requests,
            generator=settings.make_generator(),
            rng=derive_seed(settings.seed, case.case_id, k),
            case_id=case.case_id,
            affine=image.affine,
            where=str(case.image),
            exclude_labels=settings.exclude_labels,
            exclude_margin_mm=settings.exclude_margin_mm,
            filters=settings.filter.build() if settings.filter else (),
        )
        if not out.records:
            scores = [t["best_score"] for t in out.filtered_out]
            raise InputError(
                str(case.image),
                f"the filter rejected every tumor of variant {k} (best scores {scores}, "
                f"threshold {settings.filter.threshold if settings.filter else '-'})",
                fix="lower --filter-threshold, allow more --filter-retries, or keep rejected "
                "tumors (--filter-on-fail keep)",
            )
        if out.filtered_out:  # the variant's first record lists the tumors left out
            first = out.records[0]
            out.records[0] = replace(first, extra={**first.extra, LEFT_OUT_KEY: out.filtered_out})
        image_rel, label_rel = variant_files(case.case_id, k)
        save_volume(
            image,
            out_dir / image_rel,
            array=out.image,
            description=SYNTHETIC_IMAGE_DESCRIPTION,
        )
        try:
            save_volume(label, out_dir / label_rel, array=out.label)
        except BaseException:
            (out_dir / image_rel).unlink(missing_ok=True)  # no image without its label
            raise
        records = [
            replace(
                r,
                image_path=image_rel,
                label_path=label_rel,
                source_image=str(Path(case.image).resolve()),
                source_label=str(Path(case.label).resolve()),
                variant=k,
                variant_tumors=len(out.records),
                source_image_sha256=image_sha256,
                source_label_sha256=label_sha256,
                extra={**r.extra, "source_bytes": sizes},
            )
            for r in out.records
        ]
        if settings.preview and records:
            write_preview(
                out_dir / "previews" / f"{name}.png",
                out.image,
                out.label,
                image.spacing_mm,
                image.affine,
                records,
            )
        produced.append((k, records))
        if on_variant is not None:
            on_variant(k, records)
    return produced


def _source_pins(image: Path | str, label: Path | str) -> tuple[str, str, dict[str, int]]:
    """sha256 of a case's image and label, and their sizes (bytes), for its records."""
    sizes = {"image": source_bytes(image), "label": source_bytes(label)}
    return source_sha256(image), source_sha256(label), sizes


def write_preview(
    path: Path,
    image: Any,
    label: Any,
    spacing_mm: Sequence[float],
    affine: Any,
    records: Sequence[TumorRecord],
) -> Path:
    """A PNG montage: per tumor the axial slice through it and the coronal one (solid tumors)
    or the view along the tube (wall tumors); W400 L40, contours."""
    montage = render_record_montage(image, label, spacing_mm, records, affine=affine)
    return save_png(montage, path)


def preview_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """One PNG montage per case variant of a batch manifest (default ``DIR/previews``)."""
    manifest = Path(manifest)
    base = manifest.parent
    out = Path(out_dir) if out_dir is not None else base / "previews"
    groups: dict[tuple[str, str], list[TumorRecord]] = {}
    for where, record in read_numbered_manifest(manifest):
        check_record(record, where)  # its paths are the derived ones, never ../ or absolute
        groups.setdefault(variant_files(record.case_id, record.variant), []).append(record)
    written = []
    for (image_path, label_path), records in groups.items():
        image = load_image(base / image_path)
        label = load_volume(base / label_path, role="label")
        name = variant_name(records[0].case_id, records[0].variant)
        written.append(
            write_preview(
                out / f"{name}.png",
                image.array,
                label.array,
                image.spacing_mm,
                image.affine,
                records,
            )
        )
    return written


def write_dataset_json(out_dir: Path, output_labels: LabelMap, *, other_cases: int = 0) -> Path:
    """nnU-Net v2 ``dataset.json`` counting the variants in the manifest (plus ``other_cases``,
    e.g. real cases an export copies beside them), never the files found on disk: a file
    outside the manifest is a leftover of a killed run, which the next run removes."""
    manifest = out_dir / MANIFEST_NAME
    records = read_manifest(manifest) if manifest.is_file() else []
    variants = {r.image_path for r in records if r.image_path}
    labels = {"background": 0}
    for name, ids in sorted(
        {**output_labels.organs, **output_labels.tumors}.items(), key=lambda item: item[1][0]
    ):
        labels[name] = ids[0]
    data = {
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": len(variants) + other_cases,
        "file_ending": ".nii.gz",
        "name": out_dir.name,
        "description": f"synthetic tumors by tumorsynth {__version__}",
    }
    path = out_dir / "dataset.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def progress_bar(total: int, enabled: bool, initial: int = 0) -> tqdm:
    """A progress bar over case variants; silent when not ``enabled`` or there is nothing to do."""
    return tqdm(
        total=total,
        initial=initial,
        unit="case",
        desc="synthesizing",
        dynamic_ncols=True,
        disable=not enabled or total == 0,
    )


@functools.lru_cache(maxsize=4)
def _cached_generator(name: str, options_json: str) -> TumorGenerator:
    return get_generator(name, **json.loads(options_json))
