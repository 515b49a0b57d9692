"""The inputs of a folder evaluation: prediction/ground-truth pairs and their label maps.

``pair_cases`` pairs files by case id (nnU-Net style: both named ``<case>.nii.gz``);
``tumor_ids_for`` says which ids of a label map are scored as tumor; ``check_label_maps`` reads a
few pairs up front and refuses label maps that cannot describe the files; ``warn_unknown_ids``
is the cheap per-file check made while evaluating.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import LabelMap, check_ids_fit_map, label_ids, resolve_label_map
from tumorsynth.io.nifti import load_label

__all__ = [
    "MAP_CHECK_CASES",
    "check_label_maps",
    "pair_cases",
    "tumor_ids_for",
    "warn_unknown_ids",
]

#: Cases read up front to check both label maps against the files' ids (spread over the list).
MAP_CHECK_CASES = 8

_NIFTI_NAME = re.compile(r"^(?P<case>[^.].*?)\.nii(\.gz)?$")
_GT_SUBFOLDERS = ("labelsTs", "labelsTr")


def _nifti_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = _NIFTI_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        case = match["case"]
        if case in files:
            raise InputError(
                str(path), f"case {case!r} is there twice ({files[case].name} and {path.name})"
            )
        files[case] = path
    return files


def _names(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(f"{i}.nii.gz" for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def pair_cases(
    pred_dir: str | os.PathLike[str], gt_dir: str | os.PathLike[str]
) -> list[tuple[str, Path, Path]]:
    """Pair ``pred_dir/<case>.nii.gz`` with ``gt_dir/<case>.nii.gz`` by case id.

    The ground truth may also sit in ``gt_dir/labelsTs`` or ``gt_dir/labelsTr`` (an nnU-Net
    dataset folder; ``gt_dir`` itself is used when it holds NIfTI files, else ``labelsTs``, else
    ``labelsTr``). Other files (``dataset.json``, ``plans.json``, hidden files) are ignored.

    Returns
    -------
    list of (case_id, pred_path, gt_path), sorted by case id.

    Raises
    ------
    InputError
        A folder is missing or holds no NIfTI file; a prediction has no ground truth, or a
        ground-truth case has no prediction (both named).
    """
    pred_dir, gt_root = Path(pred_dir), Path(gt_dir)
    for flag, folder in (("--pred", pred_dir), ("--gt", gt_root)):
        if not folder.is_dir():
            raise InputError(str(folder), f"{flag} folder does not exist", fix="check the path")
    preds = _nifti_files(pred_dir)
    if not preds:
        raise InputError(str(pred_dir), "expected prediction files <case>.nii.gz, found none")
    gt_folder, gts = gt_root, _nifti_files(gt_root)
    for sub in _GT_SUBFOLDERS:
        if gts or not (gt_root / sub).is_dir():
            continue
        gt_folder, gts = gt_root / sub, _nifti_files(gt_root / sub)
    if not gts:
        raise InputError(
            str(gt_root),
            "expected ground-truth files <case>.nii.gz here or in labelsTs/ or labelsTr/, "
            "found none",
        )
    extra = sorted(set(preds) - set(gts))
    if extra:
        raise InputError(
            str(pred_dir),
            f"{len(extra)} of {len(preds)} predictions have no ground truth in {gt_folder}: "
            f"{_names(extra)}",
            fix="remove them or point --gt at the folder that holds their labels",
        )
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise InputError(
            str(pred_dir),
            f"{len(missing)} of {len(gts)} ground-truth cases in {gt_folder} have no "
            f"prediction: {_names(missing)}",
            fix="predict them, or point --gt at a folder holding only the predicted cases",
        )
    return [(case, preds[case], gts[case]) for case in sorted(preds)]


def tumor_ids_for(label_map: LabelMap, organ: str) -> tuple[int, ...]:
    """Tumor label ids of ``organ`` in ``label_map``; ``"all"`` gives every tumor id it has.

    Examples
    --------
    >>> from tumorsynth.io.label_maps import OUTPUT_LABELS
    >>> tumor_ids_for(OUTPUT_LABELS, "kidney"), tumor_ids_for(OUTPUT_LABELS, "all")
    ((6,), (2, 4, 6))
    """
    ids = set(label_map.all_tumor_ids() if organ == "all" else label_map.tumor_ids(organ))
    if not ids:
        known = sorted(name.removesuffix("_tumor") for name in label_map.tumors)
        raise InputError(
            f"--organ {organ!r}",
            f"label map {label_map.name!r} has no tumor id for this organ; it has tumors of "
            f"{known or 'no organ'}",
            fix="pass the organ whose tumors the labels hold, 'all', or another label map",
        )
    return tuple(sorted(ids))


def check_label_maps(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    *,
    label_map_gt: str | os.PathLike[str] | Mapping[str, object] | LabelMap,
    label_map_pred: str | os.PathLike[str] | Mapping[str, object] | LabelMap | None = None,
    organ: str = "all",
) -> None:
    """Refuse label maps that cannot describe the files; warn about ids a map does not define.

    Reads up to :data:`MAP_CHECK_CASES` pairs spread over the cases, so that ground truth in KiTS
    ids read with ``tumorsynth``, or predictions in another convention than ``label_map_pred``,
    stop the evaluation before it starts. Messages name the ``evaluate`` command's flags.

    Raises
    ------
    InputError
        The files of one side hold none of the ids its map scores as tumor and ids that belong to
        another convention (see :func:`~tumorsynth.io.label_maps.check_ids_fit_map`).
    """
    maps = {"--label-map": resolve_label_map(label_map_gt)}
    maps["--pred-label-map"] = (
        resolve_label_map(label_map_pred) if label_map_pred is not None else maps["--label-map"]
    )
    pairs = pair_cases(pred_dir, gt_dir)
    picks = sorted({round(i) for i in np.linspace(0, len(pairs) - 1, MAP_CHECK_CASES)})
    present: dict[str, dict[str, set[int]]] = {"--label-map": {}, "--pred-label-map": {}}
    for i in picks:
        _, pred_path, gt_path = pairs[i]
        for flag, path in (("--pred-label-map", pred_path), ("--label-map", gt_path)):
            present[flag][str(path)] = label_ids(load_label(path).array)
    for flag in ("--label-map", "--pred-label-map"):
        own_map = flag == "--label-map" or label_map_pred is not None
        where = flag if own_map else "--label-map (for --pred)"
        for text in check_ids_fit_map(
            present[flag], maps[flag], tumor_ids_for(maps[flag], organ), flag=where, organ=organ
        ):
            warnings.warn(text, stacklevel=2)


def warn_unknown_ids(array: np.ndarray, label_map: LabelMap, where: str) -> None:
    """Warn about ids above the map's largest id (a cheap check: one max over the volume)."""
    largest = max(label_map.known_ids(), default=0)
    if not array.size or int(array.max()) <= largest:
        return
    unknown = sorted(int(i) for i in np.unique(array[array > largest]))
    warnings.warn(
        f"{where}: label ids {unknown} are not in label map {label_map.name!r}; they are "
        "not counted as tumor (is this the right --label-map / --pred-label-map?)",
        stacklevel=3,
    )
