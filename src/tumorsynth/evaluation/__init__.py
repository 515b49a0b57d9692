"""Evaluation of tumor segmentation: DSC, NSD, lesion- and patient-level detection, reports.

Definitions follow DESIGN.md ("Evaluation: definitions"); all in mm at the scan's own spacing.
One module per role: per-case metrics (``metrics``, ``lesions``), the inputs of a folder
evaluation (``pairing``: pairs of files, label-map checks, tumor probability maps), evaluating
folders (``folders``), pooling cases into a typed summary with bootstrap intervals (``summary``),
the FROC from probability maps (``froc``), every metric per subgroup of a metadata table
(``subgroups``), and writing it all (``report``: JSON and markdown; ``plots``: PNG figures).

Examples
--------
>>> import numpy as np
>>> gt = np.zeros((40, 40, 20), np.uint8); gt[10:20, 10:20, 5:10] = 2
>>> case = evaluate_case(gt, gt, (1.0, 1.0, 2.0), tumor_ids_pred=(2,), tumor_ids_gt=(2,))
>>> case.dsc, case.nsd, case.detected, case.lesions[0]["stratum"]
(1.0, 1.0, 1, '[5,10)')
"""

from tumorsynth.evaluation.folders import EvaluationReport, EvaluationSettings, evaluate_folders
from tumorsynth.evaluation.froc import (
    FP_RATES,
    CaseFroc,
    FrocCurve,
    FrocOutput,
    case_froc,
    fp_components_by_level,
    summarize_froc,
)
from tumorsynth.evaluation.lesions import (
    EARLY_STAGE_DIAMETER_MM,
    RADIUS_STRATA_MM,
    STRATUM_NAMES,
    LesionMatch,
    LesionRecord,
    equivalent_radius_mm,
    match_lesions,
    patient_positive,
    radius_stratum,
)
from tumorsynth.evaluation.metrics import (
    EMPTY_CASES_RULE,
    CaseEvaluation,
    dice,
    evaluate_case,
    normalized_surface_dice,
    surface_voxels,
    tumor_mask,
)
from tumorsynth.evaluation.pairing import (
    check_label_maps,
    find_probability_maps,
    load_probability_map,
    pair_cases,
    tumor_ids_for,
)
from tumorsynth.evaluation.report import froc_line, render_markdown, summary_line, write_report
from tumorsynth.evaluation.subgroups import (
    Metadata,
    SubgroupOutput,
    parse_bin_specs,
    read_metadata,
    summarize_subgroups,
)
from tumorsynth.evaluation.summary import Estimate, EvaluationSummary, summarize_cases

__all__ = [
    "EARLY_STAGE_DIAMETER_MM",
    "EMPTY_CASES_RULE",
    "FP_RATES",
    "RADIUS_STRATA_MM",
    "STRATUM_NAMES",
    "CaseEvaluation",
    "CaseFroc",
    "Estimate",
    "EvaluationReport",
    "EvaluationSettings",
    "EvaluationSummary",
    "FrocCurve",
    "FrocOutput",
    "LesionMatch",
    "LesionRecord",
    "Metadata",
    "SubgroupOutput",
    "case_froc",
    "check_label_maps",
    "dice",
    "equivalent_radius_mm",
    "evaluate_case",
    "evaluate_folders",
    "find_probability_maps",
    "fp_components_by_level",
    "froc_line",
    "load_probability_map",
    "match_lesions",
    "normalized_surface_dice",
    "pair_cases",
    "parse_bin_specs",
    "patient_positive",
    "radius_stratum",
    "read_metadata",
    "render_markdown",
    "summarize_cases",
    "summarize_froc",
    "summarize_subgroups",
    "summary_line",
    "surface_voxels",
    "tumor_ids_for",
    "tumor_mask",
    "write_report",
]
