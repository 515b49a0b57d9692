"""Write an evaluation: ``report.json``, ``report.md`` and the PNG plots, each atomically.

The JSON holds the summary (:meth:`~tumorsynth.evaluation.summary.EvaluationSummary.to_dict`),
every case and the settings, with NaN (a statistic without cases to compute it on) written as
``null``; the markdown shows the same numbers as tables, NaN as ``n/a``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tumorsynth._types import plain_json
from tumorsynth.evaluation.folders import EvaluationReport
from tumorsynth.evaluation.lesions import STRATUM_NAMES
from tumorsynth.evaluation.metrics import EMPTY_CASES_RULE
from tumorsynth.evaluation.plots import plot_score_distribution, plot_sensitivity_by_stratum
from tumorsynth.evaluation.summary import Estimate
from tumorsynth.io.atomic import atomic_path, output_dir

__all__ = ["nan_to_none", "render_markdown", "summary_line", "write_report"]


def nan_to_none(value: Any) -> Any:
    """``value`` with every non-finite float (in dicts and lists too) replaced by ``None``, for
    strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
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
        data = nan_to_none(plain_json(report.to_json()))
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


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def _fmt_ci(pair: Sequence[float]) -> str:
    low, high = pair
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"{low:.3f} to {high:.3f}"


def render_markdown(report: EvaluationReport) -> str:
    """A readable summary table, the per-stratum table and the per-case table, in markdown."""
    s, st = report.summary, report.settings
    tumor_cases, controls = s.n_tumor_cases, s.n_controls
    rows: list[tuple[str, Estimate, str]] = [
        ("DSC mean", s.dsc_mean, f"{tumor_cases} cases with tumor"),
        (f"NSD mean ({st.get('nsd_tolerance_mm')} mm)", s.nsd_mean, f"{tumor_cases} cases"),
        ("Lesion sensitivity", s.lesion_sensitivity, f"{s.n_lesions} lesions"),
        (
            "Early-stage sensitivity (diameter < 20 mm)",
            s.early_stage_sensitivity,
            f"{s.n_early_stage_lesions} lesions",
        ),
        ("False-positive components per case", s.fp_per_case, f"{s.n_cases} cases"),
        ("Patient sensitivity", s.patient_sensitivity, f"{tumor_cases} cases with tumor"),
        ("Patient specificity", s.patient_specificity, f"{controls} controls"),
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
            f"- {s.n_cases} cases: {tumor_cases} with tumor, {controls} controls "
            f"({s.n_false_positive_cases} with a false-positive prediction)"
        ),
        (
            f"- patient level: positive when predicted volume > {st.get('patient_threshold_mm3')} "
            f"mm^3 after dropping components under {st.get('min_radius_mm')} mm equivalent radius"
        ),
        (
            f"- 95% intervals: percentile bootstrap over cases, {s.n_bootstrap} "
            f"resamples, seed {s.seed}"
        ),
        f"- empty cases: {EMPTY_CASES_RULE}",
        "",
        "## Summary",
        "",
        "| metric | value | 95% CI | over |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {_fmt(estimate.value)} | {_fmt_ci(estimate.ci95)} | {over} |"
        for label, estimate, over in rows
    ]
    lines += [
        "",
        "## Lesion sensitivity by equivalent radius",
        "",
        "| radius (mm) | lesions | detected | sensitivity | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for name in STRATUM_NAMES:
        stratum = s.lesion_sensitivity_by_stratum[name]
        lines.append(
            f"| {name} | {s.n_lesions_by_stratum[name]} | {s.n_detected_by_stratum[name]} | "
            f"{_fmt(stratum.value)} | {_fmt_ci(stratum.ci95)} |"
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


def summary_line(report: EvaluationReport) -> str:
    """The headline numbers in one line (what ``tumorsynth evaluate`` prints)."""
    s = report.summary
    tolerance_mm = float(report.settings.get("nsd_tolerance_mm", math.nan))
    return (
        f"{s.n_cases} cases ({s.n_tumor_cases} with tumor, {s.n_controls} controls): "
        f"DSC {_fmt(s.dsc_mean.value)}, NSD@{tolerance_mm:g}mm {_fmt(s.nsd_mean.value)}, "
        f"lesion sensitivity {_fmt(s.lesion_sensitivity.value)} ({s.n_detected}/{s.n_lesions}), "
        f"early-stage {_fmt(s.early_stage_sensitivity.value)}, FP components/case "
        f"{_fmt(s.fp_per_case.value)}, patient sensitivity {_fmt(s.patient_sensitivity.value)}, "
        f"specificity {_fmt(s.patient_specificity.value)}"
    )
