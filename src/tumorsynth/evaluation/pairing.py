"""The inputs of a folder evaluation: prediction/ground-truth pairs and their label maps.

``pair_cases`` pairs files by case id (nnU-Net style: both named ``<case>.nii.gz``);
``tumor_ids_for`` says which ids of a label map are scored as tumor; ``check_label_maps`` reads a
few pairs up front and refuses label maps that cannot describe the files; ``warn_unknown_ids``
is the cheap per-file check made while evaluating. ``find_probability_maps`` finds the tumor
probability maps of the FROC (``<pred>/probabilities/<case_id>_<organ>_tumor.nii.gz``, one per
case and organ, written by ``tumorsynth predict --save-probabilities``) and
``load_probability_map`` reads one, checked against its prediction's grid.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import LabelMap, check_ids_fit_map, label_ids, resolve_label_map
from tumorsynth.io.nifti import Volume, load_label, load_volume

__all__ = [
    "MAP_CHECK_CASES",
    "PROBABILITY_FOLDER",
    "ProbabilityMaps",
    "check_label_maps",
    "find_probability_maps",
    "load_probability_map",
    "pair_cases",
    "tumor_ids_for",
    "warn_unknown_ids",
]

#: Cases read up front to check both label maps against the files' ids (spread over the list).
MAP_CHECK_CASES = 8

#: Subfolder of the predictions where ``tumorsynth predict --save-probabilities`` writes the
#: tumor probability maps ``<case_id>_<organ>_tumor.nii.gz``.
PROBABILITY_FOLDER = "probabilities"
#: Stored value of probability 1 in a probability map (``v = round(255 p)``, uint8).
_PROBABILITY_MAX = 255

_PROBABILITY_NAME = re.compile(r"^(?P<stem>[^.].*)_tumor\.nii(\.gz)?$")
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
    ((6,), (2, 4, 6, 8, 10, 12))
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


@dataclass(frozen=True)
class ProbabilityMaps:
    """The probability maps of an evaluation, checked complete before any case is evaluated.

    Attributes
    ----------
    folder
        Where they were looked for.
    files
        ``organ -> case_id -> path``; every organ has a file for every case.
    reason
        Why there are none (when ``files`` is empty), for the report.
    """

    folder: Path
    files: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)
    reason: str = ""


def _case_and_organ(stem: str, case_ids: Sequence[str]) -> tuple[str, str] | None:
    """Split ``<case_id>_<organ>`` with the longest case id that fits (ids may hold ``_``)."""
    fits = [c for c in case_ids if stem.startswith(f"{c}_") and len(stem) > len(c) + 1]
    if not fits:
        return None
    case = max(fits, key=len)
    return case, stem[len(case) + 1 :]


def find_probability_maps(
    pred_dir: str | os.PathLike[str],
    case_ids: Sequence[str],
    *,
    organ: str = "all",
    folder: str | os.PathLike[str] | None = None,
) -> ProbabilityMaps:
    """Find ``<case_id>_<organ>_tumor.nii.gz`` in ``folder`` (default ``pred_dir/probabilities``).

    Parameters
    ----------
    pred_dir
        The predictions' folder.
    case_ids
        The cases of the evaluation.
    organ
        Keep only this organ's maps (``"all"``: every organ found).
    folder
        An explicit folder (``--probabilities``): it must exist and hold maps.

    Returns
    -------
    ProbabilityMaps
        With ``reason`` set (and no files) when the default folder is missing or holds no map
        of the organ.

    Raises
    ------
    InputError
        An explicit folder that is missing or holds no map; a map whose case is not in the
        evaluation; an organ with maps for some cases but not for others (the missing file named).
    """
    explicit = folder is not None
    where = Path(folder) if folder is not None else Path(pred_dir) / PROBABILITY_FOLDER
    hint = "tumorsynth predict --save-probabilities writes them"
    if not where.is_dir():
        if explicit:
            raise InputError(f"--probabilities {where}", "folder does not exist")
        return ProbabilityMaps(
            where, reason=f"no probability maps: {where} does not exist ({hint})"
        )
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(where.iterdir()):
        match = _PROBABILITY_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        parts = _case_and_organ(match["stem"], case_ids)
        if parts is None:
            raise InputError(
                str(path),
                "expected <case_id>_<organ>_tumor.nii.gz for a case of the evaluation, found no "
                "case id of the predictions at the start of the name",
                fix="remove it, or evaluate the predictions it belongs to",
            )
        found.setdefault(parts[1], {})[parts[0]] = path
    wanted = {o: f for o, f in found.items() if organ in ("all", o)}
    if not wanted:
        seen = f" (found maps of {sorted(found)})" if found else ""
        what = "tumor probability maps" if organ == "all" else f"{organ} tumor probability maps"
        text = f"no {what} <case_id>_<organ>_tumor.nii.gz in {where}{seen}"
        if explicit:
            raise InputError(f"--probabilities {where}", f"expected {what}, found none{seen}")
        return ProbabilityMaps(where, reason=f"{text} ({hint})")
    for name, files in sorted(wanted.items()):
        missing = [case for case in case_ids if case not in files]
        if missing:
            shown = ", ".join(f"{case}_{name}_tumor.nii.gz" for case in missing[:5])
            raise InputError(
                str(where / f"{missing[0]}_{name}_tumor.nii.gz"),
                f"missing: {len(missing)} of {len(case_ids)} cases have no {name} tumor "
                f"probability map while {len(files)} have one ({shown}"
                f"{' and more' if len(missing) > 5 else ''}); FROC needs one for every case",
                fix="predict them again with --save-probabilities, or remove the folder",
            )
    return ProbabilityMaps(where, {o: dict(f) for o, f in sorted(wanted.items())})


def load_probability_map(path: str | os.PathLike[str], prediction: Volume) -> np.ndarray:
    """Stored values (uint8, ``round(255 p)``) of a probability map on ``prediction``'s grid.

    Raises
    ------
    InputError
        Unreadable or not 3-D; a grid (shape or affine) other than the prediction's; values that
        are not whole numbers in 0..255.
    """
    volume = load_volume(path, role="tumor probability map")
    name = volume.name
    expected = f"the grid of its prediction {prediction.name}"
    if volume.shape != prediction.shape:
        raise InputError(
            name, f"shape {volume.shape} does not match {prediction.shape}, {expected}"
        )
    diff = float(np.max(np.abs(volume.affine - prediction.affine)))
    if diff > 1e-3:
        raise InputError(name, f"affine differs by up to {diff:.4g} mm from {expected}")
    values = volume.array
    if values.dtype == np.uint8:
        return values
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    whole = np.issubdtype(values.dtype, np.integer) or bool(np.all(np.rint(values) == values))
    if not (whole and lo >= 0 and hi <= _PROBABILITY_MAX):
        raise InputError(
            name,
            f"expected stored values round(255 p) in 0..255 (uint8), found {values.dtype} "
            f"values in [{lo:g}, {hi:g}]{'' if whole else ', not whole numbers'}",
            fix="write probabilities p as round(255 * p) in uint8",
        )
    return values.astype(np.uint8)
