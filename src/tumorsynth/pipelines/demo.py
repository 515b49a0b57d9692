"""``tumorsynth demo``: the main job on an embedded default, no user data needed.

Builds the procedurally generated abdominal CT phantom (clearly a phantom, not a patient), puts
tumors into six of its organs (liver, pancreas, kidneys, colon, esophagus, uterus) with the same
batch pipeline a user's dataset goes through, and writes NIfTI, the manifest and PNG previews
(a montage per tumor, with a view along the tube for the colon's and esophagus's wall tumors,
and an overview of the case). Given ``image``/``label`` it runs the same on a real scan instead,
asking only for the organs its label holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import output_dir
from tumorsynth.io.datasets import CaseRef, check_distinct_inputs
from tumorsynth.io.identity import case_id_from
from tumorsynth.io.label_maps import (
    OUTPUT_LABELS,
    LabelMap,
    ids_present,
    label_mask,
    resolve_label_map,
)
from tumorsynth.io.nifti import load_label, load_volume, save_volume
from tumorsynth.io.records import TumorRecord
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.batch import BatchSettings, run_batch, variant_name
from tumorsynth.pipelines.case_check import require_label_map
from tumorsynth.pipelines.synthesize import TumorRequest
from tumorsynth.previews import render_overview, save_png
from tumorsynth.previews_wall import render_record_montage

__all__ = ["PHANTOM_REQUESTS", "DemoOutput", "run_demo"]

#: What the demo puts into the phantom: a mix of liver tumors, one pancreas, two kidney tumors,
#: a wall tumor of the colon (medium: 3-5 cm long, 1-1.5 cm thick) and of the esophagus (tiny:
#: the phantom's esophagus is thin and short, an inscribed radius of ~9 mm over 3-5 cm, and larger
#: classes do not always fit it), and one uterus tumor.
PHANTOM_REQUESTS = (
    TumorRequest("liver", 4, "mixed"),
    TumorRequest("pancreas", 1, "small"),
    TumorRequest("kidney", 2, "medium"),
    TumorRequest("colon", 1, "medium"),
    TumorRequest("esophagus", 1, "tiny"),
    TumorRequest("uterus", 1, "small"),
)
_REAL_SCAN_REQUESTS = {
    "liver": TumorRequest("liver", 3, "mixed"),
    "pancreas": TumorRequest("pancreas", 1, "small"),
    "kidney": TumorRequest("kidney", 1, "small"),
    "colon": TumorRequest("colon", 1, "small"),
    "esophagus": TumorRequest("esophagus", 1, "tiny"),
    "uterus": TumorRequest("uterus", 1, "small"),
}
#: A real scan's tube organ is asked for a tumor only when its mask holds this much (mL): a scan
#: that ends just below the heart shows a few slices of the esophagus, too short for any tumor.
_MIN_TUBE_ML = {"colon": 30.0, "esophagus": 3.0}


@dataclass
class DemoOutput:
    out_dir: Path
    phantom: bool
    records: list[TumorRecord] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    image: str | None = None,
    label: str | None = None,
    label_map: str | None = None,
    progress: bool = True,
) -> DemoOutput:
    """Run the demo into ``out_dir`` (phantom unless ``image`` and ``label`` are given).

    The phantom gets :data:`PHANTOM_REQUESTS`. A real scan gets a tumor request for each of the
    six organs its label holds under ``label_map`` (a colon or esophagus only when its mask
    holds enough of the tube for a wall tumor, :data:`_MIN_TUBE_ML`). A real scan and its label
    are checked (files, label map, organs present) before ``out_dir`` is created, and a run
    that fails leaves no folder it created behind.

    Writes the batch outputs (``imagesTr``, ``labelsTr``, ``manifest.jsonl``) and two PNGs:
    ``previews/<case>_syn0.png``, one row per tumor (axial, and beside it coronal or, for a
    wall tumor, the view along its tube: :func:`~tumorsynth.previews_wall.render_record_montage`),
    and ``previews/<case>_syn0_overview.png``, whole axial slices where the tumors are largest.
    """
    if image is not None:
        requests, lmap_name, case = _real_scan_plan(image, label, label_map)
    with output_dir(out_dir) as out:
        if image is None:
            ct, seg = make_phantom(seed)
            image_path = save_volume(
                ct,
                out / "phantom" / "phantom_ct.nii.gz",
                description="tumorsynth PHANTOM (synthetic, not a patient)",
            )
            label_path = save_volume(
                seg,
                out / "phantom" / "phantom_label.nii.gz",
                description="tumorsynth PHANTOM labels",
            )
            requests, lmap_name = PHANTOM_REQUESTS, "phantom"
            case = CaseRef("phantom", Path(image_path), Path(label_path))
        return _run(out, case, requests, lmap_name, seed, progress, phantom=image is None)


def _real_scan_plan(
    image: str, label: str | None, label_map: str | None
) -> tuple[tuple[TumorRequest, ...], str, CaseRef]:
    """Requests for the organs a real scan's label holds; bad input raises before any output."""
    if label is None:
        raise InputError("--label", "--image needs its organ labels")
    check_distinct_inputs(image, label)
    case = CaseRef(case_id_from(image, channel=False), Path(image), Path(label))
    lmap_name = require_label_map(label_map, [case], list(_REAL_SCAN_REQUESTS))
    lmap = resolve_label_map(lmap_name)
    load_volume(case.image)  # a missing or unreadable image is named before anything is made
    present, short = _organs_present(case.label, lmap)  # type: ignore[arg-type]
    requests = tuple(_REAL_SCAN_REQUESTS[o] for o in _REAL_SCAN_REQUESTS if o in present)
    if not requests:
        raise InputError(
            str(label),
            f"holds none of {', '.join(_REAL_SCAN_REQUESTS)} under label map {lmap.name!r}"
            + (f" (its {' and '.join(sorted(short))}: too little for a tumor)" if short else ""),
            fix="pass the right --label-map",
        )
    return requests, lmap_name, case


def _run(
    out: Path,
    case: CaseRef,
    requests: tuple[TumorRequest, ...],
    lmap_name: str,
    seed: int,
    progress: bool,
    *,
    phantom: bool,
) -> DemoOutput:
    settings = BatchSettings(requests, label_map=lmap_name, seed=seed, per_case=1)
    result = run_batch([case], out, settings, progress=progress)
    demo = DemoOutput(out, phantom, result.records)
    name = variant_name(case.case_id, 0)
    made = load_volume(out / "imagesTr" / f"{name}_0000.nii.gz")
    made_label = load_label(out / "labelsTr" / f"{name}.nii.gz")
    montage = render_record_montage(
        made.array, made_label.array, made.spacing_mm, result.records, affine=made.affine
    )
    demo.previews.append(save_png(montage, out / "previews" / f"{name}.png"))
    overview = render_overview(
        made.array,
        made_label.array,
        made.spacing_mm,
        affine=made.affine,
        tumor_ids=sorted(i for ids in OUTPUT_LABELS.tumors.values() for i in ids),
        organ_ids=sorted(i for ids in OUTPUT_LABELS.organs.values() for i in ids),
    )
    demo.previews.append(save_png(overview, out / "previews" / f"{name}_overview.png"))
    return demo


def _organs_present(label_path: Path, lmap: LabelMap) -> tuple[set[str], set[str]]:
    """The demo's organs that ``label_path`` holds under ``lmap``, and the tube organs it holds
    too little of for a tumor (:data:`_MIN_TUBE_ML`; left out of the first set)."""
    label = load_label(label_path)
    voxel_ml = float(np.prod(label.spacing_mm)) / 1000.0
    present: set[str] = set()
    short: set[str] = set()
    for organ in _REAL_SCAN_REQUESTS:
        ids = lmap.organs.get(organ, ())
        if organ not in _MIN_TUBE_ML:
            if ids_present(label.array, ids):
                present.add(organ)
            continue
        voxels = np.count_nonzero(label_mask(label.array, ids))  # one pass: present and volume
        if voxels:
            (short if voxels * voxel_ml < _MIN_TUBE_ML[organ] else present).add(organ)
    return present, short
