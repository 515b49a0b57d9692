"""``tumorsynth demo``: the main job on an embedded default, no user data needed.

Builds the procedurally generated abdominal CT phantom (clearly a phantom, not a patient), puts
tumors into its liver, pancreas and kidneys with the same batch pipeline a user's dataset goes
through, and writes NIfTI, the manifest and PNG previews. Given ``image``/``label`` it runs the
same on a real scan instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import output_dir
from tumorsynth.io.datasets import CaseRef, check_distinct_inputs
from tumorsynth.io.identity import case_id_from
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, ids_present, resolve_label_map
from tumorsynth.io.nifti import load_label, load_volume, save_volume
from tumorsynth.io.records import TumorRecord
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.batch import BatchSettings, run_batch, variant_name
from tumorsynth.pipelines.case_check import require_label_map
from tumorsynth.pipelines.synthesize import TumorRequest
from tumorsynth.previews import render_overview, save_png

__all__ = ["PHANTOM_REQUESTS", "DemoOutput", "run_demo"]

#: What the demo puts into the phantom: a mix of liver tumors, one pancreas, one kidney tumor.
PHANTOM_REQUESTS = (
    TumorRequest("liver", 4, "mixed"),
    TumorRequest("pancreas", 1, "small"),
    TumorRequest("kidney", 2, "medium"),
)
_REAL_SCAN_REQUESTS = {
    "liver": TumorRequest("liver", 3, "mixed"),
    "pancreas": TumorRequest("pancreas", 1, "small"),
    "kidney": TumorRequest("kidney", 1, "small"),
}


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

    A real scan and its label are checked (files, label map, organs present) before
    ``out_dir`` is created, and a run that fails leaves no folder it created behind.
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
    present = _organs_present(case.label, lmap)  # type: ignore[arg-type]
    requests = tuple(_REAL_SCAN_REQUESTS[o] for o in _REAL_SCAN_REQUESTS if o in present)
    if not requests:
        raise InputError(
            str(label),
            f"holds none of liver, pancreas, kidney under label map {lmap.name!r}",
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
    settings = BatchSettings(requests, label_map=lmap_name, seed=seed, per_case=1, preview=True)
    result = run_batch([case], out, settings, progress=progress)
    demo = DemoOutput(out, phantom, result.records)
    name = variant_name(case.case_id, 0)
    demo.previews.append(out / "previews" / f"{name}.png")
    made = load_volume(out / "imagesTr" / f"{name}_0000.nii.gz")
    made_label = load_label(out / "labelsTr" / f"{name}.nii.gz")
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


def _organs_present(label_path: Path, lmap: LabelMap) -> set[str]:
    seg = load_label(label_path).array
    return {
        organ
        for organ in _REAL_SCAN_REQUESTS
        if organ in lmap.organs and ids_present(seg, lmap.organs[organ])
    }
