"""PNG plots of an evaluation: lesion sensitivity by size stratum, per-case DSC/NSD distribution.

matplotlib (optional extra ``tumorsynth[plots]``) is imported inside the functions and drawn
through its Agg canvas without pyplot, so no global backend is switched and nothing needs a
display. Files are written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tumorsynth.evaluation.lesions import STRATUM_NAMES
from tumorsynth.io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tumorsynth.evaluation.metrics import CaseEvaluation
    from tumorsynth.evaluation.summary import EvaluationSummary

__all__ = ["new_figure", "plot_score_distribution", "plot_sensitivity_by_stratum", "save_figure"]

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
