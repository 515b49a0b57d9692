"""PNG plots of an evaluation: lesion sensitivity by size stratum, per-case DSC/NSD distribution,
the FROC curve of each tumor organ, and a forest plot of the subgroups.

matplotlib (optional extra ``tumorsynth[plots]``) is imported inside the functions and drawn
through its Agg canvas without pyplot, so no global backend is switched and nothing needs a
display. Files are written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tumorsynth.evaluation.lesions import STRATUM_NAMES
from tumorsynth.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tumorsynth.evaluation.froc import FrocOutput
    from tumorsynth.evaluation.metrics import CaseEvaluation
    from tumorsynth.evaluation.subgroups import SubgroupOutput
    from tumorsynth.evaluation.summary import EvaluationSummary

__all__ = [
    "new_figure",
    "plot_froc",
    "plot_score_distribution",
    "plot_sensitivity_by_stratum",
    "plot_subgroups",
    "save_figure",
]

_DPI = 120


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib figure on the Agg canvas (no pyplot state), at the reports' resolution."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` as a PNG atomically (no partial file on failure); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_DPI)
    return path


def plot_sensitivity_by_stratum(summary: EvaluationSummary, path: str | os.PathLike[str]) -> Path:
    """Bar chart of lesion sensitivity per equivalent-radius stratum, early stage and overall.

    Parameters
    ----------
    summary
        The evaluation's summary (point estimates, counts and 95% intervals).
    path
        PNG file to write.

    Returns
    -------
    Path
        ``path``. Each bar carries its 95% bootstrap interval and ``detected/lesions``; a stratum
        without lesions shows ``n=0`` and no bar.
    """
    names = [*STRATUM_NAMES, "early\n(d<20)", "all"]
    estimates = [summary.lesion_sensitivity_by_stratum[s] for s in STRATUM_NAMES]
    estimates += [summary.early_stage_sensitivity, summary.lesion_sensitivity]
    values = [e.value for e in estimates]
    intervals = [e.ci95 for e in estimates]
    totals = [summary.n_lesions_by_stratum[s] for s in STRATUM_NAMES]
    totals += [summary.n_early_stage_lesions, summary.n_lesions]
    hits = [summary.n_detected_by_stratum[s] for s in STRATUM_NAMES]
    hits += [summary.n_early_stage_detected, summary.n_detected]

    figure = new_figure(7.0, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    heights = [v if math.isfinite(v) else 0.0 for v in values]
    colors = ["#4c72b0"] * len(STRATUM_NAMES) + ["#dd8452", "#55a868"]
    axes.bar(x, heights, color=colors, width=0.7)
    for xi, value, (low, high) in zip(x, values, intervals):
        if math.isfinite(value) and math.isfinite(low) and math.isfinite(high):
            axes.errorbar(
                xi,
                value,
                yerr=[[value - low], [high - value]],
                color="black",
                capsize=4,
                linewidth=1,
            )
    for xi, hit, total in zip(x, hits, totals):
        axes.text(float(xi), 1.04, f"{hit}/{total}" if total else "n=0", ha="center", fontsize=8)
    axes.set_xticks(x)
    axes.set_xticklabels(names, fontsize=8)
    axes.set_ylim(0.0, 1.12)
    axes.set_ylabel("lesion sensitivity")
    axes.set_xlabel("equivalent radius (mm)")
    axes.set_title("Lesion sensitivity by size (95% bootstrap CI; detected/lesions)", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_score_distribution(cases: Sequence[CaseEvaluation], path: str | os.PathLike[str]) -> Path:
    """Box plot with the individual cases (jittered points) of DSC and NSD over tumor cases.

    Parameters
    ----------
    cases
        Per-case results; controls (no tumor in the ground truth) are left out, as in the means.
    path
        PNG file to write.
    """
    tumor_cases = [c for c in cases if c.has_tumor]
    scores = [[c.dsc for c in tumor_cases], [c.nsd for c in tumor_cases]]
    figure = new_figure(5.0, 4.0)
    axes = figure.add_subplot(1, 1, 1)
    if tumor_cases:
        axes.boxplot(scores, widths=0.5, showfliers=False)
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, size=len(tumor_cases))
        for position, values in enumerate(scores, start=1):
            axes.scatter(position + jitter, values, s=12, alpha=0.7, color="#c44e52", zorder=3)
    else:
        axes.text(0.5, 0.5, "no cases with tumor", ha="center", transform=axes.transAxes)
    axes.set_xticks([1, 2])
    axes.set_xticklabels(["DSC", "NSD"])
    axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel("score per case")
    axes.set_title(f"Per-case scores ({len(tumor_cases)} cases with tumor)", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def _interval_bar(axes: Axes, x: float, y: float, low: float, high: float, **style: Any) -> None:
    """An error bar from ``low`` to ``high`` at ``(x, y)`` (along y), when all are finite."""
    if all(math.isfinite(v) for v in (y, low, high)):
        axes.errorbar(x, y, yerr=[[y - low], [high - y]], capsize=4, linewidth=1, **style)


def plot_froc(froc: FrocOutput, path: str | os.PathLike[str]) -> Path:
    """FROC curves: lesion sensitivity against false-positive components per case.

    One line per tumor organ: at each FP per case ``x``, the best sensitivity whose FP per case
    is at most ``x`` (the rule of the tables), drawn as steps on a log2 axis (linear below 1/8);
    the 1, 2, 4 and 8 FP per case points carry their 95% bootstrap intervals.
    """
    figure = new_figure(6.0, 4.2)
    axes = figure.add_subplot(1, 1, 1)
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    largest = 8.0
    for color, (organ, curve) in zip(colors * 4, froc.curves.items()):
        fp, sensitivity = curve.fp_per_case(), np.nan_to_num(curve.sensitivity(), nan=0.0)
        order = np.lexsort((-sensitivity, fp))
        xs, ys = fp[order], np.maximum.accumulate(sensitivity[order])
        largest = max(largest, float(xs[-1]))
        label = f"{organ} ({curve.n_lesions} lesions, {curve.n_cases} cases)"
        axes.step(xs, ys, where="post", color=color, linewidth=1.5, label=label)
        for point in curve.operating_points:
            axes.plot(point.fp_rate, point.sensitivity.value, "o", color=color, markersize=4)
            low, high = point.sensitivity.ci95
            _interval_bar(axes, point.fp_rate, point.sensitivity.value, low, high, color="black")
    axes.set_xscale("symlog", base=2, linthresh=0.125, linscale=0.5)
    ticks = [0.0] + [2.0**e for e in range(-3, int(math.ceil(math.log2(largest))) + 1)]
    axes.set_xticks(ticks)
    axes.set_xticklabels([f"{t:g}" for t in ticks], fontsize=8)
    axes.set_xlim(0.0, largest * 1.05)
    axes.set_ylim(0.0, 1.02)
    for rate in (1, 2, 4, 8):
        axes.axvline(rate, color="0.85", linewidth=0.8, zorder=0)
    axes.set_xlabel("false-positive components per case")
    axes.set_ylabel("lesion sensitivity")
    axes.set_title("FROC (95% bootstrap CI at 1, 2, 4, 8 FP per case)", fontsize=10)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_subgroups(
    output: SubgroupOutput, overall: EvaluationSummary, path: str | os.PathLike[str]
) -> Path:
    """Forest plot of DSC and lesion sensitivity per subgroup, against the overall estimate.

    Each subgroup is a point with its 95% bootstrap interval; the dashed line is the overall
    point estimate; subgroups flagged worse on a metric are drawn in red.
    """
    metrics = (("dsc_mean", "DSC"), ("lesion_sensitivity", "lesion sensitivity"))
    rows = list(output.subgroups)
    labels = [f"{s.column} = {s.name} ({len(s.case_ids)})" for s in rows]
    figure = new_figure(8.0, 1.2 + 0.3 * max(len(rows), 1))
    for panel, (metric, title) in enumerate(metrics, start=1):
        axes = figure.add_subplot(1, len(metrics), panel)
        for y, subgroup in enumerate(rows):
            estimate = getattr(subgroup.summary, metric)
            color = "#c44e52" if subgroup.flags.get(metric) == "worse" else "#4c72b0"
            low, high = estimate.ci95
            if all(math.isfinite(v) for v in (estimate.value, low, high)):
                axes.plot([low, high], [y, y], color=color, linewidth=1.5)
            if math.isfinite(estimate.value):
                axes.plot(estimate.value, y, "o", color=color, markersize=5)
        reference = getattr(overall, metric).value
        if math.isfinite(reference):
            axes.axvline(reference, color="0.4", linestyle="--", linewidth=1)
        axes.set_yticks(range(len(rows)))
        axes.set_yticklabels(labels if panel == 1 else [], fontsize=8)
        axes.set_ylim(len(rows) - 0.5, -0.5)
        axes.set_xlim(-0.02, 1.02)
        axes.set_xlabel(title)
    figure.suptitle("Subgroups (95% bootstrap CI; dashed: overall; red: wholly below)", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)
