"""Evaluation of tumor segmentation: DSC, NSD, lesion- and patient-level detection, reports.

Definitions follow DESIGN.md ("Evaluation: definitions"); all in mm at the scan's own spacing.

Examples
--------
>>> import numpy as np
>>> gt = np.zeros((40, 40, 20), np.uint8); gt[10:20, 10:20, 5:10] = 2
>>> case = evaluate_case(gt, gt, (1.0, 1.0, 2.0), tumor_ids_pred=(2,), tumor_ids_gt=(2,))
>>> case.dsc, case.nsd, case.detected, case.lesions[0]["stratum"]
(1.0, 1.0, 1, '[5,10)')
"""

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
    CaseEvaluation,
    dice,
    evaluate_case,
    normalized_surface_dice,
    summarize_cases,
    surface_voxels,
    tumor_mask,
)
from tumorsynth.evaluation.report import (
    EMPTY_CASES_RULE,
    EvaluationReport,
    EvaluationSettings,
    evaluate_folders,
    pair_cases,
    render_markdown,
    tumor_ids_for,
    write_report,
)

__all__ = [
    "EARLY_STAGE_DIAMETER_MM",
    "EMPTY_CASES_RULE",
    "RADIUS_STRATA_MM",
    "STRATUM_NAMES",
    "CaseEvaluation",
    "EvaluationReport",
    "EvaluationSettings",
    "LesionMatch",
    "LesionRecord",
    "dice",
    "equivalent_radius_mm",
    "evaluate_case",
    "evaluate_folders",
    "match_lesions",
    "normalized_surface_dice",
    "pair_cases",
    "patient_positive",
    "radius_stratum",
    "render_markdown",
    "summarize_cases",
    "surface_voxels",
    "tumor_ids_for",
    "tumor_mask",
    "write_report",
]
