"""Synthesize tumors into files: one case or a whole dataset, resumable, with workers.

Output layout (nnU-Net v2 raw, so it trains as is)::

    DIR/imagesTr/<case>_syn<k>_0000.nii.gz   image with tumors (input dtype, affine, header)
    DIR/labelsTr/<case>_syn<k>.nii.gz        label in the output convention
    DIR/manifest.jsonl                       one JSON record per tumor
    DIR/dataset.json                         nnU-Net v2 dataset description
    DIR/run.json                             the settings of the run (a resume must match)
    DIR/previews/<case>_syn<k>.png           optional PNG montages

Every file is written atomically; a variant's records reach the manifest only after both of its
files are in place, so an interrupted run resumes where it stopped without duplicates.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tumorsynth import __version__
from tumorsynth._types import derive_seed
from tumorsynth.errors import InputError
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.io.datasets import CaseRef, read_case_label
from tumorsynth.io.identity import variant_files, variant_name
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map
from tumorsynth.io.nifti import load_image, load_volume, save_volume
from tumorsynth.io.preview import render_tumor_montage, save_png
from tumorsynth.io.records import (
    MANIFEST_NAME,
    TumorRecord,
    append_records,
    read_manifest,
    rewrite_manifest,
)
from tumorsynth.pipelines.synthesize import TumorRequest, synthesize_case

__all__ = [
    "BatchOutput",
    "BatchSettings",
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
    label_map: str | dict[str, Any] = "totalsegmentator"
    generator: str = "heuristic"
    seed: int = 0
    per_case: int = 1
    preview: bool = False
    #: Factory options of the generator, e.g. ``{"checkpoint": "runs/diffusion/model"}``.
    generator_options: dict[str, Any] = field(default_factory=dict)

    def make_generator(self) -> TumorGenerator:
        """The generator, built once per process (a learned one loads its weights once)."""
        return _cached_generator(self.generator, json.dumps(self.generator_options, sort_keys=True))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requests"] = [asdict(r) for r in self.requests]
        return data

    def resolved_label_map(self) -> LabelMap:
        return resolve_label_map(self.label_map)


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
    progress: bool = True,
    on_case: Callable[[str, list[TumorRecord]], None] | None = None,
) -> BatchOutput:
    """Synthesize ``settings.per_case`` variants of every case into ``out_dir``, resuming.

    Parameters
    ----------
    cases
        Cases to process (see :func:`tumorsynth.io.datasets.discover_cases`).
    out_dir
        Output folder (created). A folder that holds a run with other settings is refused.
    workers
        Processes; 1 runs in this process. Results do not depend on the worker count: each
        variant's seed derives from the run seed, the case id and the variant number.

    Raises
    ------
    InputError
        Bad input (names the file); finished variants stay valid and a rerun resumes.
    """
    with output_dir(out_dir) as out:  # a failed first run leaves nothing behind
        return _run_batch(cases, out, settings, workers, progress, on_case)


def _run_batch(
    cases: Sequence[CaseRef],
    out: Path,
    settings: BatchSettings,
    workers: int,
    progress: bool,
    on_case: Callable[[str, list[TumorRecord]], None] | None,
) -> BatchOutput:
    _check_not_inside_inputs(out, cases)
    _check_run_settings(out, settings, write=False)
    manifest = out / MANIFEST_NAME
    done = _complete_variants(manifest)
    todo: list[tuple[CaseRef, list[int]]] = []
    result = BatchOutput(out)
    for case in cases:
        pending = [k for k in range(settings.per_case) if (case.case_id, k) not in done]
        result.variants_skipped += settings.per_case - len(pending)
        if pending:
            todo.append((case, pending))
    total = sum(len(v) for _, v in todo)
    bar = progress_bar(total, progress)

    def finish(case_id: str, produced: list[tuple[int, list[TumorRecord]]]) -> None:
        _check_run_settings(out, settings, write=True)
        for _, records in produced:
            append_records(manifest, records)
            result.records.extend(records)
            result.variants_done += 1
        bar.update(len(produced))
        if on_case is not None:
            on_case(case_id, [r for _, recs in produced for r in recs])

    try:
        if workers <= 1 or len(todo) <= 1:
            for case, variants in todo:
                finish(case.case_id, synthesize_files(case, out, settings, variants))
        else:
            _run_pool(todo, out, settings, workers, finish)
    finally:
        bar.close()
        if any((out / "imagesTr").glob("*_0000.nii.gz")):
            write_dataset_json(out, OUTPUT_LABELS)
    return result


def _complete_variants(manifest: Path) -> set[tuple[str, int]]:
    """(case, variant) pairs whose records are all in the manifest; a variant cut off by a crash
    is dropped from the manifest (atomically) so that it is redone without duplicates."""
    if not manifest.exists():
        return set()
    records = read_manifest(manifest)
    groups: dict[tuple[str, int], list[TumorRecord]] = {}
    for record in records:
        groups.setdefault((record.case_id, record.variant), []).append(record)
    complete = {
        key for key, group in groups.items() if group[0].variant_tumors in (None, len(group))
    }
    if len(complete) < len(groups) or manifest.read_bytes()[-1:] not in (b"", b"\n"):
        rewrite_manifest(manifest, [r for r in records if (r.case_id, r.variant) in complete])
    return complete


def synthesize_files(
    case: CaseRef, out_dir: Path, settings: BatchSettings, variants: Sequence[int]
) -> list[tuple[int, list[TumorRecord]]]:
    """Load one case once, write each requested variant's image and label (and preview)."""
    label_map = settings.resolved_label_map()
    image = load_image(case.image)
    if case.label is None:
        raise InputError(
            str(case.image),
            "has no label; tumors are placed by the organ mask",
            fix="give --label or a dataset with labels",
        )
    label = read_case_label(case.label, label_map, image)
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
        )
        image_rel, label_rel = variant_files(case.case_id, k)
        save_volume(
            image,
            out_dir / image_rel,
            array=out.image,
            description=f"tumorsynth {__version__} synthetic tumors",
        )
        try:
            save_volume(label, out_dir / label_rel, array=out.label)
        except BaseException:
            (out_dir / image_rel).unlink(missing_ok=True)  # no image without its label
            raise
        records = [
            r.with_paths(
                image_path=image_rel,
                label_path=label_rel,
                source_image=str(Path(case.image).resolve()),
                source_label=str(Path(case.label).resolve()),
                variant=k,
                variant_tumors=len(out.records),
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
    return produced


def write_preview(
    path: Path,
    image: Any,
    label: Any,
    spacing_mm: Sequence[float],
    affine: Any,
    records: Sequence[TumorRecord],
) -> Path:
    """A PNG montage (axial and coronal through each tumor, W400 L40, contours)."""
    titles = [
        f"{r.organ} #{r.tumor_index} {r.size_class}  d={r.diameter_mm:.1f} mm  "
        f"{r.contrast_hu:+.0f} HU"
        for r in records
    ]
    crops = [max(60.0, 3.0 * r.diameter_mm) for r in records]
    tumor_ids = sorted({r.tumor_label for r in records})
    organ_ids = sorted(
        {OUTPUT_LABELS.id_of(r.organ) for r in records if r.organ in OUTPUT_LABELS.organs}
    )
    img = render_tumor_montage(
        image,
        label,
        tuple(spacing_mm),
        [r.center_vox for r in records],
        tumor_ids=tumor_ids,
        organ_ids=organ_ids,
        affine=affine,
        titles=titles,
        crop_mm=crops,
        max_rows=len(records),
    )
    return save_png(img, path)


def preview_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """One PNG montage per case variant of a batch manifest (default ``DIR/previews``)."""
    manifest = Path(manifest)
    base = manifest.parent
    out = Path(out_dir) if out_dir is not None else base / "previews"
    groups: dict[str, list[TumorRecord]] = {}
    for record in read_manifest(manifest):
        if not record.image_path or not record.label_path:
            raise InputError(
                str(manifest),
                f"record {record.case_id}#{record.tumor_index} has no image_path/label_path",
            )
        groups.setdefault(record.image_path, []).append(record)
    written = []
    for image_path, records in groups.items():
        image = load_image(base / image_path)
        label = load_volume(base / str(records[0].label_path), role="label")
        name = Path(image_path).name.replace("_0000.nii.gz", "").replace(".nii.gz", "")
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


def write_dataset_json(out_dir: Path, output_labels: LabelMap) -> Path:
    """nnU-Net v2 ``dataset.json`` describing the images written so far."""
    images = (
        sorted((out_dir / "imagesTr").glob("*_0000.nii.gz"))
        if (out_dir / "imagesTr").is_dir()
        else []
    )
    labels = {"background": 0}
    for name, ids in sorted(
        {**output_labels.organs, **output_labels.tumors}.items(), key=lambda item: item[1][0]
    ):
        labels[name] = ids[0]
    data = {
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": len(images),
        "file_ending": ".nii.gz",
        "name": out_dir.name,
        "description": f"synthetic tumors by tumorsynth {__version__}",
    }
    path = out_dir / "dataset.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _run_pool(
    todo: list[tuple[CaseRef, list[int]]],
    out: Path,
    settings: BatchSettings,
    workers: int,
    finish: Callable[[str, list[tuple[int, list[TumorRecord]]]], None],
) -> None:
    """Run cases in worker processes; the parent alone writes the manifest.

    When a case fails, no new case starts, the cases already running are finished and recorded
    (their files are on disk), and then the first error is raised.
    """
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future[Any], str] = {}
        queue = list(todo)
        error: BaseException | None = None
        try:
            while futures or (queue and error is None):
                while queue and error is None and len(futures) < 2 * workers:
                    case, variants = queue.pop(0)
                    futures[pool.submit(synthesize_files, case, out, settings, variants)] = (
                        case.case_id
                    )
                ready, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in ready:
                    case_id = futures.pop(future)
                    try:
                        produced = future.result()
                    except Exception as exc:  # noqa: BLE001 - re-raised below, after the others
                        error = error or exc
                        continue
                    finish(case_id, produced)
        except BaseException:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        if error is not None:
            raise error


def _check_run_settings(out: Path, settings: BatchSettings, *, write: bool) -> None:
    """Refuse to resume a folder made with other settings; record ours once work is done."""
    path = out / "run.json"
    wanted = {"settings": settings.to_json(), "tumorsynth_version": __version__}
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except ValueError:
            found = None
        if not found or found.get("settings") != wanted["settings"]:
            raise InputError(
                str(path),
                "this folder holds a run with other settings "
                f"({json.dumps(found.get('settings') if found else None)}); "
                "resuming it would mix two runs",
                fix="use another --out",
            )
        if found.get("tumorsynth_version") != __version__:
            warnings.warn(
                f"{path}: run was started by tumorsynth "
                f"{found.get('tumorsynth_version')}, resuming with {__version__}",
                stacklevel=3,
            )
        return
    if not write:
        return
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(wanted, indent=2) + "\n")


def _check_not_inside_inputs(out: Path, cases: Sequence[CaseRef]) -> None:
    resolved = out.resolve()
    for case in cases:
        for source in (case.image, case.label):
            if source is not None and Path(source).resolve().parent == resolved / "imagesTr":
                raise InputError(
                    str(out),
                    "is the input dataset's own folder; outputs would mix with inputs",
                    fix="choose another --out",
                )


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, initial: int = 0) -> Any:
    if not enabled or total == 0:
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="case", desc="synthesizing", dynamic_ncols=True)


@functools.lru_cache(maxsize=4)
def _cached_generator(name: str, options_json: str) -> TumorGenerator:
    return get_generator(name, **json.loads(options_json))
