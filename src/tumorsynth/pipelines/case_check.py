"""Checks of one case before any tumor is drawn: does the label fit its map, do the tumors fit?

Run once per case (the batch calls :func:`check_case_inputs` right after reading the label), so
a wrong label map or an impossible request is refused in a fraction of a second, before any
output is written, with what was found and what to pass instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import CaseRef, read_case_label
from tumorsynth.io.label_maps import PRESETS, LabelMap
from tumorsynth.io.nifti import Volume, load_image
from tumorsynth.organs.label_check import (
    LabelCheckOutput,
    check_label_stats,
    rank_presets,
    suggest_label_map,
)
from tumorsynth.organs.label_stats import measure_label
from tumorsynth.organs.tumor_capacity import check_tumor_capacity
from tumorsynth.pipelines.synthesize import TumorRequest

__all__ = ["check_case_inputs", "require_label_map"]


def check_case_inputs(
    image: Volume | None,
    label: Volume,
    label_map: LabelMap,
    requests: Sequence[TumorRequest],
    *,
    where: str,
    organs: Sequence[str] | None = None,
    flag: str = "--label-map",
) -> LabelCheckOutput | None:
    """Refuse a label that contradicts ``label_map`` and requests that cannot fit; warn on the
    unusual (see :func:`tumorsynth.organs.label_check.check_label_map`).

    The label is measured once for both checks. ``image`` (optional) adds the HU priors;
    ``organs`` the label must hold defaults to the requests' (export passes the real cases'
    organs with no requests). Folder labels (AbdomenAtlas) are built by tumorsynth from mask file
    names, so only the capacity is checked for them. Returns the label check's findings (None for
    folders).
    """
    stats = measure_label(
        label.array, label.affine, image.array if image is not None else None, where=where
    )
    result = None
    if label_map.folder_files is None:
        organs = [r.organ for r in requests] if organs is None else organs
        result = check_label_stats(stats, label_map, organs=organs, flag=flag)
    check_tumor_capacity(
        stats, label_map, [(r.organ, r.count, r.size) for r in requests], where=where
    )
    return result


def require_label_map(
    label_map: str | None,
    cases: Sequence[CaseRef],
    organs: Sequence[str],
    *,
    flag: str = "--label-map",
) -> str:
    """``label_map`` when given; else refuse, saying which preset the first case looks like.

    There is no default label map: the same ids mean different organs in different datasets
    (id 1 is the liver in MSD/LiTS and the spleen in TotalSegmentator), and a wrong guess puts
    tumors in the wrong organ. The first case's label is scored against every preset instead.
    """
    if label_map:
        return str(label_map)
    hint = f"e.g. {flag} totalsegmentator, msd, lits, kits or a JSON file"
    first = next((c for c in cases if c.label is not None), None)
    if first is not None and not Path(first.label).is_dir():  # type: ignore[arg-type]
        image = load_image(first.image)
        label = read_case_label(first.label, PRESETS["abdomenatlas"], image)  # type: ignore[arg-type]
        stats = measure_label(label.array, label.affine, image.array, where=str(first.label))
        ranked = rank_presets(stats, organs)
        phrase = suggest_label_map(stats, organs)
        hint = f"{first.label}: {phrase}"
        if ranked:
            hint += f"; pass {flag} {ranked[0].name}"
    elif first is not None:
        hint = f"{first.label} is an AbdomenAtlas folder: pass {flag} abdomenatlas"
    raise InputError(
        flag,
        "is required: label ids mean different organs in different datasets (id 1 is the liver "
        "in MSD/LiTS, the spleen in TotalSegmentator), so tumorsynth does not guess",
        fix=hint,
    )
