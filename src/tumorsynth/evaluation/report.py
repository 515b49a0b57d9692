"""Write an evaluation: ``report.json``, ``report.md`` and the PNG plots, each atomically.

The JSON holds the summary (:meth:`~tumorsynth.evaluation.summary.EvaluationSummary.to_dict`),
the same per organ (``organs``, when the evaluation covered tumors of several organs), the FROC
(or why there is none), the subgroups (when a metadata table was given), every case and
the settings, with NaN (a statistic without cases to compute it on) written as ``null``; the
markdown shows the same numbers as tables, NaN as ``n/a``.
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
from tumorsynth.evaluation.froc import TABLE_THRESHOLDS, THRESHOLD_RULE, FrocOutput
from tumorsynth.evaluation.lesions import STRATUM_NAMES
from tumorsynth.evaluation.metrics import EMPTY_CASES_RULE
from tumorsynth.evaluation.plots import (
    plot_froc,
    plot_score_distribution,
    plot_sensitivity_by_stratum,
    plot_subgroups,
)
from tumorsynth.evaluation.subgroups import MIN_CASES_TO_FLAG, Subgroup, SubgroupOutput
from tumorsynth.evaluation.summary import HEADLINE_METRICS, Estimate, EvaluationSummary
from tumorsynth.io.atomic import atomic_path, output_dir

__all__ = ["froc_line", "nan_to_none", "render_markdown", "summary_line", "write_report"]

#: Column titles of the headline metrics in the subgroup tables.
_METRIC_TITLES = {
    "dsc_mean": "DSC",
    "nsd_mean": "NSD",
    "lesion_sensitivity": "lesion sens.",
    "early_stage_sensitivity": "early-stage sens.",
    "fp_per_case": "FP/case",
    "patient_sensitivity": "patient sens.",
    "patient_specificity": "patient spec.",
}


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
        ``{"json", "markdown", "sensitivity_plot", "dsc_plot", "froc_plot", "subgroup_plot"}`` ->
        paths written (plots only when requested and matplotlib is installed, a warning says when
        it is not; the FROC plot only with a FROC, the subgroup plot only with subgroups).
    """
    written: dict[str, Path] = {}
    with output_dir(out_dir) as folder:
        data = nan_to_none(plain_json(report.to_json()))
        written["json"] = folder / "report.json"
        with atomic_path(written["json"]) as tmp:
            tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        written["markdown"] = folder / "report.md"
        with atomic_path(written["markdown"]) as tmp:
            tmp.write_text(render_markdown(report), encoding="utf-8")
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
            if report.froc is not None and report.froc.computed:
                written["froc_plot"] = plot_froc(report.froc, folder / "froc.png")
            if report.subgroups is not None:
                written["subgroup_plot"] = plot_subgroups(
                    report.subgroups, report.summary, folder / "subgroups.png"
                )
    return written


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def _fmt_ci(pair: Sequence[float], digits: int = 3) -> str:
    low, high = pair
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"{low:.{digits}f} to {high:.{digits}f}"


def _froc_markdown(froc: FrocOutput) -> list[str]:
    lines = ["", "## FROC: lesion sensitivity against false positives per case", ""]
    if not froc.computed:
        return lines + [f"Not computed: {froc.reason}."]
    lines.append(f"Tumor probability maps: `{froc.folder}`; {THRESHOLD_RULE}.")
    lines += [f"- {note}" for note in froc.notes]
    for organ, curve in froc.curves.items():
        lines += [
            "",
            f"### {organ} tumors: {curve.n_lesions} lesions in {curve.n_cases} cases",
            "",
            "| FP per case (at most) | sensitivity | 95% CI | threshold | FP per case there |",
            "|---|---|---|---|---|",
        ]
        for point in curve.operating_points:
            threshold = "none" if point.threshold is None else f"{point.threshold:.3f}"
            lines.append(
                f"| {point.fp_rate:g} | {_fmt(point.sensitivity.value)} | "
                f"{_fmt_ci(point.sensitivity.ci95)} | {threshold} | {point.fp_per_case:.2f} |"
            )
        lines += ["", "| threshold | sensitivity | FP per case |", "|---|---|---|"]
        for t in TABLE_THRESHOLDS:
            sensitivity, fp = curve.at_threshold(t)
            lines.append(f"| {t:.2f} | {_fmt(sensitivity)} | {fp:.2f} |")
    return lines


def _with_ci(estimate: Estimate) -> str:
    """``0.812 (0.700 to 0.900)``; without an interval, the value alone."""
    interval = _fmt_ci(estimate.ci95)
    return _fmt(estimate.value) + (f" ({interval})" if interval != "n/a" else "")


def _organ_markdown(report: EvaluationReport) -> list[str]:
    """The headline metrics of each organ's tumors, with 95% intervals, and its lesions by
    equivalent-radius stratum (detected / lesions)."""
    titles = " | ".join(_METRIC_TITLES[m] for m in HEADLINE_METRICS)
    lines = [
        "",
        "## Per organ",
        "",
        "Each organ's tumor ids alone; a case without that organ's tumors is its control.",
        "",
        f"| organ | tumor ids (gt / pred) | cases with tumor | lesions | {titles} |",
        "|---|---|---|---|" + "---|" * len(HEADLINE_METRICS),
    ]
    for name, organ in report.organs.items():
        s = organ.summary
        cells = " | ".join(_with_ci(getattr(s, m)) for m in HEADLINE_METRICS)
        ids = f"{list(organ.tumor_ids_gt)} / {list(organ.tumor_ids_pred)}"
        lines.append(f"| {name} | {ids} | {s.n_tumor_cases} | {s.n_lesions} | {cells} |")
    lines += [
        "",
        "| organ | " + " | ".join(f"{name} mm" for name in STRATUM_NAMES) + " |",
        "|---|" + "---|" * len(STRATUM_NAMES),
    ]
    for name, organ in report.organs.items():
        s = organ.summary
        counts = " | ".join(
            f"{s.n_detected_by_stratum[k]}/{s.n_lesions_by_stratum[k]}" for k in STRATUM_NAMES
        )
        lines.append(f"| {name} | {counts} |")
    return lines


def _cell(subgroup: Subgroup | None, summary: EvaluationSummary, metric: str) -> str:
    estimate: Estimate = getattr(summary, metric)
    if not math.isfinite(estimate.value):
        return "n/a"
    text = f"{_fmt(estimate.value, 2)} ({_fmt_ci(estimate.ci95, 2)})"
    if subgroup is None:
        return text
    flag = subgroup.flags.get(metric)
    if flag:
        return f"{text} {'▼' if flag == 'worse' else '▲'}"
    return f"{text} †" if metric in subgroup.few_cases else text


def _shortfall(subgroup: Subgroup, overall: EvaluationSummary) -> str:
    parts = [
        f"{_METRIC_TITLES[m]} {_fmt(getattr(subgroup.summary, m).value)} "
        f"({_fmt_ci(getattr(subgroup.summary, m).ci95)}) vs {_fmt(getattr(overall, m).value)}"
        for m in HEADLINE_METRICS
        if subgroup.flags.get(m) == "worse"
    ]
    return f"- {subgroup.column} = {subgroup.name} ({len(subgroup.case_ids)} cases): " + "; ".join(
        parts
    )


def _subgroup_markdown(output: SubgroupOutput, overall: EvaluationSummary) -> list[str]:
    meta = output.metadata
    lines = [
        "",
        f"## Subgroups (metadata: `{meta.path}`)",
        "",
        "Every metric per subgroup, 95% bootstrap interval over the subgroup's cases in parentheses. "
        "▼: the interval lies wholly below the overall estimate (above it for FP/case), the model "
        "does worse there; ▲: wholly better; †: fewer than "
        f"{MIN_CASES_TO_FLAG} cases count in that metric, not flagged.",
    ]
    if meta.unlisted_cases:
        lines.append(f"{len(meta.unlisted_cases)} evaluated cases are not in the table (missing).")
    if meta.unknown_cases:
        lines.append(f"{len(meta.unknown_cases)} cases of the table were not evaluated (ignored).")
    worse = output.worse()
    lines += ["", "### Where the model does not generalize", ""]
    lines += [_shortfall(s, overall) for s in worse] or [
        "No subgroup's interval lies wholly below the overall estimate on any metric."
    ]
    unjudged = [s for s in output.subgroups if len(s.few_cases) == len(HEADLINE_METRICS)]
    fine = [s for s in output.subgroups if s not in worse and s not in unjudged]
    for text, group in (
        ("No metric wholly below the overall estimate", fine),
        (f"Too few cases to judge (fewer than {MIN_CASES_TO_FLAG} in every metric)", unjudged),
    ):
        if group:
            names = ", ".join(f"{s.column} = {s.name} ({len(s.case_ids)})" for s in group)
            lines += ["", f"{text}: {names}."]
    for column in meta.columns:
        titles = " | ".join(_METRIC_TITLES[m] for m in HEADLINE_METRICS)
        edges = f", edges {', '.join(f'{e:g}' for e in column.edges)}" if column.edges else ""
        lines += [
            "",
            f"### {column.name} ({column.kind}{edges})",
            "",
            f"| {column.name} | cases | {titles} |",
            "|---|---|" + "---|" * len(HEADLINE_METRICS),
            f"| all | {overall.n_cases} | "
            + " | ".join(_cell(None, overall, m) for m in HEADLINE_METRICS)
            + " |",
        ]
        for subgroup in output.subgroups:
            if subgroup.column == column.name:
                cells = " | ".join(_cell(subgroup, subgroup.summary, m) for m in HEADLINE_METRICS)
                lines.append(f"| {subgroup.name} | {len(subgroup.case_ids)} | {cells} |")
    return lines


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
    if report.organs:
        lines += _organ_markdown(report)
    if report.froc is not None:
        lines += _froc_markdown(report.froc)
    if report.subgroups is not None:
        lines += _subgroup_markdown(report.subgroups, s)
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


def froc_line(report: EvaluationReport) -> str | None:
    """Sensitivity at 1, 2, 4 and 8 FP per case of each organ in one line (None without FROC)."""
    if report.froc is None or not report.froc.computed:
        return None
    parts = []
    for organ, curve in report.froc.curves.items():
        points = ", ".join(
            f"{_fmt(p.sensitivity.value)}@{p.fp_rate:g}" for p in curve.operating_points
        )
        parts.append(f"{organ} ({curve.n_lesions} lesions) {points}")
    return "FROC sensitivity@FP per case: " + "; ".join(parts)
