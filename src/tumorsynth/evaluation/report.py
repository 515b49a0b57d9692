"""Evaluate folders of predictions, summarize with bootstrap intervals, write the report.

``evaluate_folders`` pairs prediction and ground-truth files by case id (nnU-Net style: both named
``<case>.nii.gz``), evaluates each pair with :func:`~tumorsynth.evaluation.metrics.evaluate_case`
and summarizes: means of DSC/NSD over cases with tumor, pooled lesion sensitivity (overall, per
equivalent-radius stratum, early stage), false-positive components per case, patient-level
sensitivity (cases with tumor) and specificity (controls), each with a 95% percentile bootstrap
interval over cases (resampling cases, pooling their lesions). ``write_report`` writes
``report.json``, ``report.md`` and two PNG plots, each atomically.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tumorsynth import __version__
from tumorsynth._types import plain_json
from tumorsynth.errors import InputError
from tumorsynth.evaluation.lesions import (
    CONNECTIVITY,
    EARLY_STAGE_DIAMETER_MM,
    RADIUS_STRATA_MM,
    STRATUM_NAMES,
)
from tumorsynth.evaluation.metrics import CaseEvaluation, evaluate_case, summarize_cases
from tumorsynth.evaluation.plots import plot_score_distribution, plot_sensitivity_by_stratum
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.io.label_maps import LabelMap, resolve_label_map
from tumorsynth.io.nifti import check_same_grid, load_label

__all__ = [
    "EMPTY_CASES_RULE",
    "EvaluationReport",
    "EvaluationSettings",
    "evaluate_folders",
    "pair_cases",
    "render_markdown",
    "tumor_ids_for",
    "write_report",
]

#: How cases without tumor in the ground truth or the prediction are counted (also in report.json).
EMPTY_CASES_RULE = (
    "gt empty and pred empty: dsc = nsd = 1, a correct control, left out of dsc_mean/nsd_mean; "
    "gt empty and pred not empty: dsc = nsd = 0, a false-positive case, left out of the means; "
    "gt not empty and pred empty: dsc = nsd = 0, in the means. "
    "dsc_mean and nsd_mean are over cases whose ground truth contains tumor."
)

_NIFTI_NAME = re.compile(r"^(?P<case>[^.].*?)\.nii(\.gz)?$")
_GT_SUBFOLDERS = ("labelsTs", "labelsTr")


@dataclass(frozen=True)
class EvaluationSettings:
    """Settings of one evaluation, validated once.

    Parameters
    ----------
    organ
        Organ whose tumors are evaluated, or ``"all"`` for the union of every tumor id of the map.
    nsd_tolerance_mm
        NSD tolerance in mm.
    patient_threshold_mm3
        A case is predicted positive when its kept predicted volume exceeds this (mm^3).
    min_radius_mm
        Predicted components with a smaller equivalent radius (mm) are dropped for that call.
    n_bootstrap
        Bootstrap resamples over cases (0: no intervals).
    seed
        Seed of the bootstrap's ``numpy.random.Generator``.
    """

    organ: str = "all"
    nsd_tolerance_mm: float = 2.0
    patient_threshold_mm3: float = 30.0
    min_radius_mm: float = 3.0
    n_bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("nsd_tolerance_mm", "patient_threshold_mm3", "min_radius_mm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(name, f"expected a finite number >= 0, found {value!r}")
        if int(self.n_bootstrap) < 0:
            raise InputError("n_bootstrap", f"expected >= 0 resamples, found {self.n_bootstrap}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluationReport:
    """Per-case results, their summary (with ``ci95``) and the settings that produced them."""

    cases: list[CaseEvaluation]
    summary: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_cases(
        cls, cases: Sequence[CaseEvaluation], settings: EvaluationSettings, **context: Any
    ) -> EvaluationReport:
        """Summarize ``cases``; ``context`` (folders, label maps, ids) is kept in ``settings``."""
        summary = summarize_cases(cases, n_bootstrap=settings.n_bootstrap, seed=settings.seed)
        recorded = {
            **settings.to_json(),
            **context,
            "empty_cases": EMPTY_CASES_RULE,
            "radius_strata_mm": list(RADIUS_STRATA_MM),
            "stratum_names": list(STRATUM_NAMES),
            "early_stage_diameter_mm": EARLY_STAGE_DIAMETER_MM,
            "connectivity": CONNECTIVITY,
            "tumorsynth_version": __version__,
        }
        return cls(list(cases), summary, recorded)

    def to_json(self) -> dict[str, Any]:
        """The content of ``report.json`` (NaN stays NaN here; :func:`write_report` nulls it)."""
        return {
            "summary": self.summary,
            "cases": [case.to_json() for case in self.cases],
            "settings": self.settings,
        }


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


def _known_ids(label_map: LabelMap) -> set[int]:
    groups = [*label_map.organs.values(), *label_map.tumors.values()]
    return {int(i) for ids in groups for i in ids} | {
        *label_map.generic_organ,
        *label_map.generic_tumor,
    }


def _warn_unknown_ids(array: np.ndarray, label_map: LabelMap, where: str) -> None:
    """Warn about ids above the map's largest id (a cheap check: one max over the volume)."""
    known = _known_ids(label_map)
    if not array.size or int(array.max()) <= max(known, default=0):
        return
    unknown = sorted(int(i) for i in np.unique(array[array > max(known, default=0)]))
    warnings.warn(
        f"{where}: label ids {unknown} are not in label map {label_map.name!r}; they are "
        "not counted as tumor (is this the right --label-map / --pred-label-map?)",
        stacklevel=3,
    )


def _evaluate_files(
    case_id: str,
    pred_path: Path,
    gt_path: Path,
    maps: tuple[LabelMap, LabelMap],
    ids: tuple[tuple[int, ...], tuple[int, ...]],
    settings: EvaluationSettings,
) -> CaseEvaluation:
    """Load one pair, check the grid, evaluate (runs in worker processes too)."""
    gt, pred = load_label(gt_path), load_label(pred_path)
    check_same_grid(gt, pred)
    _warn_unknown_ids(gt.array, maps[1], str(gt_path))
    _warn_unknown_ids(pred.array, maps[0], str(pred_path))
    return evaluate_case(
        pred.array,
        gt.array,
        gt.spacing_mm,
        tumor_ids_pred=ids[0],
        tumor_ids_gt=ids[1],
        nsd_tolerance_mm=settings.nsd_tolerance_mm,
        patient_threshold_mm3=settings.patient_threshold_mm3,
        min_radius_mm=settings.min_radius_mm,
        case_id=case_id,
    )


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    *,
    label_map_gt: str | os.PathLike[str] | LabelMap,
    label_map_pred: str | os.PathLike[str] | LabelMap | None = None,
    organ: str = "all",
    nsd_tolerance_mm: float = 2.0,
    patient_threshold_mm3: float = 30.0,
    min_radius_mm: float = 3.0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> EvaluationReport:
    """Evaluate every prediction in ``pred_dir`` against its ground truth in ``gt_dir``.

    Parameters
    ----------
    pred_dir, gt_dir
        Folders of ``<case>.nii.gz`` label maps (see :func:`pair_cases`).
    label_map_gt, label_map_pred
        Preset name, JSON file or :class:`LabelMap` of each side; the prediction's defaults to
        the ground truth's.
    organ
        ``liver``, ``pancreas``, ``kidney`` (any organ the maps name) or ``all``.
    nsd_tolerance_mm, patient_threshold_mm3, min_radius_mm, n_bootstrap, seed
        See :class:`EvaluationSettings`.
    workers
        Processes that evaluate cases in parallel (1: in this process).
    progress
        Show a progress bar on stderr.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    InputError
        Missing folders or files, unmatched cases, a grid mismatch, an organ without tumor ids.
    """
    settings = EvaluationSettings(
        organ, nsd_tolerance_mm, patient_threshold_mm3, min_radius_mm, int(n_bootstrap), int(seed)
    )
    if int(workers) < 1:
        raise InputError("--workers", f"expected >= 1, found {workers}")
    map_gt = resolve_label_map(label_map_gt)
    map_pred = resolve_label_map(label_map_pred) if label_map_pred is not None else map_gt
    ids = (tumor_ids_for(map_pred, organ), tumor_ids_for(map_gt, organ))
    pairs = pair_cases(pred_dir, gt_dir)
    maps = (map_pred, map_gt)
    bar = tqdm(
        total=len(pairs), unit="case", desc="evaluating", disable=not progress, dynamic_ncols=True
    )
    results: dict[str, CaseEvaluation] = {}
    try:
        if int(workers) == 1 or len(pairs) == 1:
            for case_id, pred_path, gt_path in pairs:
                results[case_id] = _evaluate_files(case_id, pred_path, gt_path, maps, ids, settings)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(int(workers), len(pairs))) as pool:
                futures: dict[Future[CaseEvaluation], str] = {
                    pool.submit(_evaluate_files, case, p, g, maps, ids, settings): case
                    for case, p, g in pairs
                }
                pending = set(futures)
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            results[futures[future]] = future.result()
                            bar.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    cases = [results[case_id] for case_id, _, _ in pairs]
    return EvaluationReport.from_cases(
        cases,
        settings,
        pred_dir=str(pred_dir),
        gt_dir=str(gt_dir),
        label_map_gt=map_gt.to_json(),
        label_map_pred=map_pred.to_json(),
        tumor_ids_gt=list(ids[1]),
        tumor_ids_pred=list(ids[0]),
    )


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def write_report(
    report: EvaluationReport, out_dir: str | os.PathLike[str], *, plots: bool = True
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (with matplotlib) the PNG plots into ``out_dir``.

    Every file is written atomically; NaN (a statistic without cases to compute it on) is written
    as JSON ``null`` and as ``n/a`` in the markdown.

    Returns
    -------
    dict
        ``{"json", "markdown", "sensitivity_plot", "dsc_plot"}`` -> paths written (plots only when
        requested and matplotlib is installed; a warning says when it is not).
    """
    written: dict[str, Path] = {}
    with output_dir(out_dir) as folder:
        data = _nan_to_none(plain_json(report.to_json()))
        written["json"] = folder / "report.json"
        with atomic_path(written["json"]) as tmp:
            tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        written["markdown"] = folder / "report.md"
        with atomic_path(written["markdown"]) as tmp:
            tmp.write_text(render_markdown(report))
        if plots:
            try:
                import matplotlib  # noqa: F401  (optional extra tumorsynth[plots])
            except ImportError:
                warnings.warn(
                    "matplotlib is not installed: no plots (pip install 'tumorsynth[plots]')",
                    stacklevel=2,
                )
                return written
            written["sensitivity_plot"] = plot_sensitivity_by_stratum(
                report.summary, folder / "sensitivity_by_size.png"
            )
            written["dsc_plot"] = plot_score_distribution(
                report.cases, folder / "dsc_distribution.png"
            )
    return written


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _fmt_ci(pair: Sequence[float | None]) -> str:
    low, high = pair
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"{low:.3f} to {high:.3f}"


def render_markdown(report: EvaluationReport) -> str:
    """A readable summary table, the per-stratum table and the per-case table, in markdown."""
    s, ci, st = report.summary, report.summary["ci95"], report.settings
    tumor_cases, controls = s["n_tumor_cases"], s["n_controls"]
    rows = [
        ("DSC mean", "dsc_mean", f"{tumor_cases} cases with tumor"),
        (f"NSD mean ({st.get('nsd_tolerance_mm')} mm)", "nsd_mean", f"{tumor_cases} cases"),
        ("Lesion sensitivity", "lesion_sensitivity", f"{s['n_lesions']} lesions"),
        (
            "Early-stage sensitivity (diameter < 20 mm)",
            "early_stage_sensitivity",
            f"{s['n_early_stage_lesions']} lesions",
        ),
        ("False-positive components per case", "fp_per_case", f"{s['n_cases']} cases"),
        ("Patient sensitivity", "patient_sensitivity", f"{tumor_cases} cases with tumor"),
        ("Patient specificity", "patient_specificity", f"{controls} controls"),
    ]
    lines = [
        "# Tumor segmentation evaluation",
        "",
        f"- predictions: `{st.get('pred_dir', '-')}`; ground truth: `{st.get('gt_dir', '-')}`",
        (
            f"- organ: {st.get('organ')} (tumor ids: ground truth {st.get('tumor_ids_gt', '-')}, "
            f"prediction {st.get('tumor_ids_pred', '-')})"
        ),
        (
            f"- {s['n_cases']} cases: {tumor_cases} with tumor, {controls} controls "
            f"({s['n_false_positive_cases']} with a false-positive prediction)"
        ),
        (
            f"- patient level: positive when predicted volume > {st.get('patient_threshold_mm3')} "
            f"mm^3 after dropping components under {st.get('min_radius_mm')} mm equivalent radius"
        ),
        (
            f"- 95% intervals: percentile bootstrap over cases, {s['bootstrap']['n_resamples']} "
            f"resamples, seed {s['bootstrap']['seed']}"
        ),
        f"- empty cases: {EMPTY_CASES_RULE}",
        "",
        "## Summary",
        "",
        "| metric | value | 95% CI | over |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {_fmt(s[key])} | {_fmt_ci(ci[key])} | {over} |" for label, key, over in rows
    ]
    lines += [
        "",
        "## Lesion sensitivity by equivalent radius",
        "",
        "| radius (mm) | lesions | detected | sensitivity | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for name in STRATUM_NAMES:
        lines.append(
            f"| {name} | {s['n_lesions_by_stratum'][name]} | {s['n_detected_by_stratum'][name]} | "
            f"{_fmt(s['lesion_sensitivity_by_stratum'][name])} | "
            f"{_fmt_ci(ci['lesion_sensitivity_by_stratum'][name])} |"
        )
    lines += [
        "",
        "## Cases",
        "",
        (
            "| case | tumor | DSC | NSD | lesions | detected | FP components | predicted positive "
            "| tumor volume gt / pred (mL) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in report.cases:
        lines.append(
            f"| {case.case_id} | {'yes' if case.has_tumor else 'no'} | {_fmt(case.dsc)} | "
            f"{_fmt(case.nsd)} | {case.n_lesions} | {case.detected} | {case.fp_components} | "
            f"{'yes' if case.predicted_positive else 'no'} | "
            f"{case.gt_volume_ml:.2f} / {case.pred_volume_ml:.2f} |"
        )
    return "\n".join(lines) + "\n"
