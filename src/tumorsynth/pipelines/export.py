"""Export a synthetic (or mixed) training set in nnU-Net v2 raw format, so nnU-Net itself can train
on it: ``DatasetNNN_Name/imagesTr``, ``labelsTr`` and a valid ``dataset.json``.

Synthetic cases come from healthy scans through the resumable batch (``<case>_syn<k>``); real
annotated cases, if given, are added as ``real_<case>`` with their labels converted to the output
convention. Labels (``dataset.json``, always all of them, consecutive as nnU-Net wants: a label
file holds every organ its source map names, whichever organs got tumors): 0 background,
1 liver, 2 liver tumor, 3 pancreas, 4 pancreas tumor, 5 kidney, 6 kidney tumor, 7 colon,
8 colon tumor, 9 esophagus, 10 esophagus tumor, 11 uterus, 12 uterus tumor.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tumorsynth import __version__
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.io.datasets import discover_cases, read_case_label
from tumorsynth.io.identity import check_folder_apart
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map, to_output_labels
from tumorsynth.io.nifti import load_image, load_label, save_volume
from tumorsynth.io.run_lock import run_lock
from tumorsynth.pipelines.batch import BatchSettings, progress_bar, run_batch, write_dataset_json
from tumorsynth.pipelines.case_check import check_case_inputs

__all__ = ["NNUNET_NAME", "ExportOutput", "export_nnunet"]

NNUNET_NAME = re.compile(r"^Dataset(\d{3})_[A-Za-z0-9_-]+$")


@dataclass
class ExportOutput:
    folder: Path
    synthetic_cases: int
    real_cases: int


def export_nnunet(
    out_dir: str | os.PathLike[str],
    settings: BatchSettings,
    *,
    healthy: str | os.PathLike[str] | None = None,
    real: str | os.PathLike[str] | None = None,
    real_label_map: str | None = None,
    organs: tuple[str, ...] = ("liver",),
    workers: int = 1,
    progress: bool = True,
) -> ExportOutput:
    """Write ``out_dir`` (named ``DatasetNNN_Name``) with synthetic and optionally real cases."""
    out = Path(out_dir)
    if not NNUNET_NAME.match(out.name):
        raise InputError(
            str(out),
            "nnU-Net v2 needs the folder named DatasetNNN_Name "
            "(three digits, e.g. Dataset101_SynthLiver)",
            fix="rename --out",
        )
    if healthy is None and real is None:
        raise InputError("export-nnunet", "expected --healthy and/or --real datasets")
    for source, role in ((healthy, "--healthy dataset"), (real, "--real dataset")):
        if source is not None:
            check_folder_apart(out, source, role)
    if real is not None:
        if not real_label_map:
            raise InputError(
                "--real-label-map",
                "is required with --real: the real cases' label ids name organs and tumors",
                fix="pass a preset such as lits, msd, kits or totalsegmentator, or a JSON file",
            )
        _check_real_labels(real, resolve_label_map(real_label_map), organs)
    synthetic = 0
    with output_dir(out) as folder, run_lock(folder):  # one lock for the batch and the real cases
        if healthy is not None:
            result = run_batch(
                discover_cases(healthy), folder, settings, workers=workers, progress=progress
            )
            synthetic = result.variants_done + result.variants_skipped
        n_real = _copy_real(real, folder, str(real_label_map), organs, progress) if real else 0
        write_dataset_json(folder, OUTPUT_LABELS, other_cases=n_real)
        _annotate_dataset_json(folder, synthetic, n_real)
    return ExportOutput(out, synthetic, n_real)


def _check_real_labels(
    real: str | os.PathLike[str], label_map: LabelMap, organs: tuple[str, ...]
) -> None:
    """Every real case's label against its map, before any output (labels only: cheap)."""
    if label_map.folder_files is not None:  # AbdomenAtlas folders: ids come from file names
        return
    for case in discover_cases(real):
        if case.label is None:
            raise InputError(str(case.image), "real case has no label")
        check_case_inputs(
            None,
            load_label(case.label),
            label_map,
            (),
            organs=organs,
            where=str(case.label),
            flag="--real-label-map",
        )


def _copy_real(
    real: str | os.PathLike[str],
    folder: Path,
    label_map_name: str,
    organs: tuple[str, ...],
    progress: bool,
) -> int:
    label_map = resolve_label_map(label_map_name)
    cases = discover_cases(real)
    bar = progress_bar(len(cases), progress)
    try:
        for case in cases:
            name = f"real_{case.case_id}"
            image_out = folder / "imagesTr" / f"{name}_0000.nii.gz"
            label_out = folder / "labelsTr" / f"{name}.nii.gz"
            if not (image_out.exists() and label_out.exists()):
                image = load_image(case.image)
                if case.label is None:
                    raise InputError(str(case.image), "real case has no label")
                label = read_case_label(case.label, label_map, image)
                converted = to_output_labels(label.array, label_map, OUTPUT_LABELS, list(organs))
                if str(case.image).endswith(".nii.gz"):
                    with atomic_path(image_out) as tmp:
                        shutil.copyfile(case.image, tmp)  # the scan itself, byte for byte
                else:
                    save_volume(image, image_out)
                save_volume(label, label_out, array=converted)
            bar.update(1)
    finally:
        bar.close()
    return len(cases)


def _annotate_dataset_json(folder: Path, synthetic: int, real: int) -> None:
    path = folder / "dataset.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["description"] = (
        f"tumorsynth {__version__}: {synthetic} synthetic case variants, "
        f"{real} real cases; manifest.jsonl holds one record per synthetic tumor"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
