"""Evaluate a folder of predictions against its ground truth: one report of cases and summary.

``evaluate_folders`` pairs the files (:mod:`~tumorsynth.evaluation.pairing`), evaluates each pair
with :func:`~tumorsynth.evaluation.metrics.evaluate_case` (in worker processes when asked) and
summarizes the cases (:func:`~tumorsynth.evaluation.summary.summarize_cases`): means of DSC/NSD
over cases with tumor, pooled lesion sensitivity (overall, per equivalent-radius stratum, early
stage), false-positive components per case, patient-level sensitivity and specificity, each with
a 95% percentile bootstrap interval over cases. With ``organ="all"`` and tumors of several organs
in the maps (the output convention has six: liver, pancreas, kidney, colon, esophagus, uterus),
every metric is also computed per organ on that organ's tumor ids (a case without tumors of that
organ is its control), for each organ with a tumor in the ground truth or the prediction of some
case. With tumor probability maps beside the predictions it adds the FROC of each tumor organ
(:mod:`~tumorsynth.evaluation.froc`); with a metadata table, every metric per subgroup
(:mod:`~tumorsynth.evaluation.subgroups`). Both inputs are checked before the first case is
evaluated. :func:`~tumorsynth.evaluation.report.write_report`
writes the result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tumorsynth import __version__
from tumorsynth.errors import InputError
from tumorsynth.evaluation.froc import (
    CaseFroc,
    FrocOutput,
    case_froc,
    summarize_froc,
)
from tumorsynth.evaluation.lesions import (
    CONNECTIVITY,
    EARLY_STAGE_DIAMETER_MM,
    RADIUS_STRATA_MM,
    STRATUM_NAMES,
)
from tumorsynth.evaluation.metrics import (
    EMPTY_CASES_RULE,
    CaseEvaluation,
    evaluate_case,
    tumor_mask,
)
from tumorsynth.evaluation.pairing import (
    find_probability_maps,
    load_probability_map,
    pair_cases,
    tumor_ids_for,
    warn_unknown_ids,
)
from tumorsynth.evaluation.subgroups import (
    BinSpec,
    Metadata,
    SubgroupOutput,
    read_metadata,
    summarize_subgroups,
)
from tumorsynth.evaluation.summary import EvaluationSummary, summarize_cases
from tumorsynth.io.label_maps import LabelMap, resolve_label_map
from tumorsynth.io.nifti import check_same_grid, load_label

__all__ = [
    "EvaluationReport",
    "EvaluationSettings",
    "OrganEvaluation",
    "evaluate_folders",
    "organ_tumor_ids",
]


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
    """Per-case results, their summary and the settings that produced them.

    ``settings`` is what report.json records under ``settings``: the
    :class:`EvaluationSettings`, the context (folders, label maps, tumor ids) and the definitions
    in force (empty-case rule, strata, early-stage diameter, connectivity, version). ``froc`` is
    None when it was not looked for; ``subgroups`` when no metadata was given; ``organs`` is
    empty unless the evaluation covered tumors of several organs (module docstring).
    """

    cases: list[CaseEvaluation]
    summary: EvaluationSummary
    settings: dict[str, Any] = field(default_factory=dict)
    froc: FrocOutput | None = None
    subgroups: SubgroupOutput | None = None
    organs: dict[str, OrganEvaluation] = field(default_factory=dict)

    @classmethod
    def from_cases(
        cls,
        cases: Sequence[CaseEvaluation],
        settings: EvaluationSettings,
        *,
        froc: FrocOutput | None = None,
        metadata: Metadata | None = None,
        organs: Mapping[str, tuple[Sequence[CaseEvaluation], Sequence[int], Sequence[int]]]
        | None = None,
        **context: Any,
    ) -> EvaluationReport:
        """Summarize ``cases`` (and their subgroups when ``metadata`` is given; and per organ,
        ``organs``: name -> (its cases, its ground-truth and predicted tumor ids)); ``context``
        (folders, label maps, ids) is kept in ``settings``."""
        summary = summarize_cases(cases, n_bootstrap=settings.n_bootstrap, seed=settings.seed)
        per_organ = {
            name: OrganEvaluation(
                list(organ_cases),
                summarize_cases(organ_cases, n_bootstrap=settings.n_bootstrap, seed=settings.seed),
                tuple(gt_ids),
                tuple(pred_ids),
            )
            for name, (organ_cases, gt_ids, pred_ids) in (organs or {}).items()
        }
        subgroups = None
        if metadata is not None:
            subgroups = summarize_subgroups(
                cases, metadata, summary, n_bootstrap=settings.n_bootstrap, seed=settings.seed
            )
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
        return cls(list(cases), summary, recorded, froc, subgroups, per_organ)

    def to_json(self) -> dict[str, Any]:
        """The content of ``report.json`` (NaN stays NaN here; the report writer nulls it)."""
        return {
            "summary": self.summary.to_dict(),
            "organs": {name: organ.to_json() for name, organ in self.organs.items()},
            "froc": self.froc.to_dict() if self.froc is not None else None,
            "subgroups": self.subgroups.to_dict() if self.subgroups is not None else None,
            "cases": [case.to_json() for case in self.cases],
            "settings": self.settings,
        }


@dataclass
class OrganEvaluation:
    """The metrics of one organ's tumors: per case (its tumor ids only; a case without them is
    a control) and pooled."""

    cases: list[CaseEvaluation]
    summary: EvaluationSummary
    tumor_ids_gt: tuple[int, ...]
    tumor_ids_pred: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_dict(),
            "tumor_ids_gt": list(self.tumor_ids_gt),
            "tumor_ids_pred": list(self.tumor_ids_pred),
            "cases": [case.to_json() for case in self.cases],
        }


#: Per case: organ -> (its probability map, the ground-truth tumor ids of that organ).
_FrocInputs = Mapping[str, tuple[Path, tuple[int, ...]]]
#: Organ -> (its predicted tumor ids, its ground-truth tumor ids).
_OrganIds = Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]
#: One case's results: overall, its FROC scores, per organ.
_CaseResult = tuple[CaseEvaluation, tuple[CaseFroc, ...], dict[str, CaseEvaluation]]


def organ_tumor_ids(
    map_pred: LabelMap, map_gt: LabelMap
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Organ -> (predicted, ground-truth) tumor ids, for each organ both maps name tumors of
    (in the ground truth map's order); empty when fewer than two organs have them.

    Examples
    --------
    >>> from tumorsynth.io.label_maps import OUTPUT_LABELS
    >>> ids = organ_tumor_ids(OUTPUT_LABELS, OUTPUT_LABELS)
    >>> list(ids)[3:], ids["colon"]
    (['colon', 'esophagus', 'uterus'], ((8,), (8,)))
    """
    found = {}
    for name in map_gt.organs:
        gt, pred = map_gt.tumors.get(f"{name}_tumor"), map_pred.tumors.get(f"{name}_tumor")
        if gt and pred:
            found[name] = (tuple(pred), tuple(gt))
    return found if len(found) > 1 else {}


def _evaluate_files(
    case_id: str,
    pred_path: Path,
    gt_path: Path,
    maps: tuple[LabelMap, LabelMap],
    ids: tuple[tuple[int, ...], tuple[int, ...]],
    settings: EvaluationSettings,
    froc_inputs: _FrocInputs,
    organ_ids: _OrganIds | None = None,
) -> _CaseResult:
    """Load one pair, check the grid, evaluate (overall, and per organ of ``organ_ids``);
    score its probability maps when there are any (runs in worker processes too)."""
    gt, pred = load_label(gt_path), load_label(pred_path)
    check_same_grid(gt, pred)
    warn_unknown_ids(gt.array, maps[1], str(gt_path))
    warn_unknown_ids(pred.array, maps[0], str(pred_path))
    frocs = tuple(
        case_froc(
            load_probability_map(path, pred),
            tumor_mask(gt.array, gt_ids),
            case_id=case_id,
            organ=organ,
        )
        for organ, (path, gt_ids) in froc_inputs.items()
    )
    evaluations = {
        name: evaluate_case(
            pred.array,
            gt.array,
            gt.spacing_mm,
            tumor_ids_pred=pred_ids,
            tumor_ids_gt=gt_ids,
            nsd_tolerance_mm=settings.nsd_tolerance_mm,
            patient_threshold_mm3=settings.patient_threshold_mm3,
            min_radius_mm=settings.min_radius_mm,
            case_id=case_id,
        )
        for name, (pred_ids, gt_ids) in {"": ids, **(organ_ids or {})}.items()
    }
    return evaluations.pop(""), frocs, evaluations


def _plain_bins(spec: BinSpec) -> object:
    return list(spec) if isinstance(spec, tuple) else spec


def _froc_inputs(
    pred_dir: str | os.PathLike[str],
    case_ids: Sequence[str],
    organ: str,
    folder: str | os.PathLike[str] | None,
    map_gt: LabelMap,
) -> tuple[dict[str, _FrocInputs], FrocOutput]:
    """Per case, the maps to score; and the FROC's source, reason and notes (curves to come)."""
    found = find_probability_maps(pred_dir, case_ids, organ=organ, folder=folder)
    notes, scored = [], {}
    for name, files in found.files.items():
        try:
            scored[name] = (files, tumor_ids_for(map_gt, name))
        except InputError as error:  # only with --organ all: maps of an organ the labels lack
            notes.append(f"{name} tumor probability maps not scored: {error.message}")
    reason = found.reason or ("; ".join(notes) if not scored else "")
    per_case: dict[str, _FrocInputs] = {
        case: {name: (files[case], ids) for name, (files, ids) in scored.items()}
        for case in case_ids
    }
    return per_case, FrocOutput(str(found.folder), reason=reason, notes=tuple(notes))


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    *,
    label_map_gt: str | os.PathLike[str] | Mapping[str, object] | LabelMap,
    label_map_pred: str | os.PathLike[str] | Mapping[str, object] | LabelMap | None = None,
    organ: str = "all",
    nsd_tolerance_mm: float = 2.0,
    patient_threshold_mm3: float = 30.0,
    min_radius_mm: float = 3.0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
    probabilities: str | os.PathLike[str] | None = None,
    metadata: str | os.PathLike[str] | None = None,
    metadata_bins: Mapping[str, BinSpec] | None = None,
) -> EvaluationReport:
    """Evaluate every prediction in ``pred_dir`` against its ground truth in ``gt_dir``.

    Parameters
    ----------
    pred_dir, gt_dir
        Folders of ``<case>.nii.gz`` label maps (see
        :func:`~tumorsynth.evaluation.pairing.pair_cases`).
    label_map_gt, label_map_pred
        Preset name, JSON file, inline mapping or :class:`LabelMap` of each side; the
        prediction's defaults to the ground truth's.
    organ
        ``liver``, ``pancreas``, ``kidney`` (any organ the maps name) or ``all``.
    nsd_tolerance_mm, patient_threshold_mm3, min_radius_mm, n_bootstrap, seed
        See :class:`EvaluationSettings`.
    workers
        Processes that evaluate cases in parallel (1: in this process).
    progress
        Show a progress bar on stderr.
    probabilities
        Folder of tumor probability maps ``<case_id>_<organ>_tumor.nii.gz`` (default:
        ``pred_dir/probabilities`` when it exists; without maps the report says why there is no
        FROC).
    metadata, metadata_bins
        Per-case CSV table and its bins (see :func:`~tumorsynth.evaluation.subgroups.read_metadata`):
        every metric per subgroup.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    InputError
        Missing folders or files, unmatched cases, a grid mismatch, an organ without tumor ids;
        incomplete or mismatched probability maps; a bad metadata table.
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
    case_ids = [case for case, _, _ in pairs]
    table = None
    if metadata is not None:
        table = read_metadata(metadata, case_ids, bins=metadata_bins)
    froc_inputs, froc = _froc_inputs(pred_dir, case_ids, organ, probabilities, map_gt)
    maps = (map_pred, map_gt)
    organ_ids = organ_tumor_ids(map_pred, map_gt) if organ == "all" else {}
    bar = tqdm(
        total=len(pairs), unit="case", desc="evaluating", disable=not progress, dynamic_ncols=True
    )
    results: dict[str, _CaseResult] = {}
    try:
        if int(workers) == 1 or len(pairs) == 1:
            for case, p, g in pairs:
                results[case] = _evaluate_files(
                    case, p, g, maps, ids, settings, froc_inputs[case], organ_ids
                )
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(int(workers), len(pairs))) as pool:
                futures: dict[Future[_CaseResult], str] = {
                    pool.submit(
                        _evaluate_files,
                        case,
                        p,
                        g,
                        maps,
                        ids,
                        settings,
                        froc_inputs[case],
                        organ_ids,
                    ): case
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
    cases = [results[case][0] for case in case_ids]
    by_organ: dict[str, list[CaseFroc]] = {}
    for case in case_ids:
        for scored in results[case][1]:
            by_organ.setdefault(scored.organ, []).append(scored)
    curves = {
        name: summarize_froc(
            scored, organ=name, n_bootstrap=settings.n_bootstrap, seed=settings.seed
        )
        for name, scored in by_organ.items()
    }
    by_case_organ = {case: results[case][2] for case in case_ids}
    organs = {
        name: (
            [by_case_organ[case][name] for case in case_ids],
            organ_ids[name][1],
            organ_ids[name][0],
        )
        for name in organ_ids
        if any(
            by_case_organ[c][name].has_tumor or by_case_organ[c][name].pred_volume_ml > 0
            for c in case_ids
        )
    }
    return EvaluationReport.from_cases(
        cases,
        settings,
        froc=replace(froc, curves=curves),
        metadata=table,
        organs=organs,
        pred_dir=str(pred_dir),
        gt_dir=str(gt_dir),
        label_map_gt=map_gt.to_json(),
        label_map_pred=map_pred.to_json(),
        tumor_ids_gt=list(ids[1]),
        tumor_ids_pred=list(ids[0]),
        probabilities_dir=froc.folder,
        metadata_file=str(metadata) if metadata is not None else None,
        metadata_bins={k: _plain_bins(v) for k, v in (metadata_bins or {}).items()},
    )
