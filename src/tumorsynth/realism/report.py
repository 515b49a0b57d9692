"""Write a realism study: ``report.json`` for machines, ``report.md`` for a reader, atomically.

The verdict is a fixed rule (:func:`realism_verdict`), so a reader and a test can check it:

- **distinguishable** when, on some feature set that describes the tumors (every set but the
  baselines ``host_only`` and ``scan_indicator``), a classifier's AUC interval lies above 0.5
  *and* its permutation p-value is at most ``alpha`` (0.05);
- **indistinguishable** otherwise, given enough samples; **inconclusive** when the test could not
  have seen much (fewer than ``min_per_side`` real or synthetic samples, or fewer than
  ``min_groups`` cross-validation groups): "not shown to differ" is not "the same";
- **untested** without any two-sample result (a separability study alone).

Warnings go with it: a baseline that itself separates the groups (the classifier tells the scans
apart, not the tumors), few samples (with the counts), a best p-value that would not survive a
Bonferroni correction for the number of set x classifier tests, and an AUC interval below 0.5.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tumorsynth._types import plain_json
from tumorsynth.evaluation.report import nan_to_none
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.realism.features import FEATURE_DESCRIPTIONS
from tumorsynth.realism.plots import BASELINE_SETS

if TYPE_CHECKING:
    from tumorsynth.realism.c2st import C2STResult
    from tumorsynth.realism.compare import FeatureDifference
    from tumorsynth.realism.features import TumorFeatures
    from tumorsynth.realism.separability import SeparabilityResult

__all__ = ["RealismVerdict", "VerdictLabel", "realism_verdict", "render_markdown", "write_report"]

VerdictLabel = Literal["distinguishable", "indistinguishable", "inconclusive", "untested"]

#: Fewer real or synthetic samples than this make the verdict inconclusive (and a warning).
MIN_PER_SIDE = 20
#: Fewer cross-validation groups (scans) than this make the verdict inconclusive.
MIN_GROUPS = 5
#: Rows of the per-feature table in ``report.md`` (``report.json`` has every feature).
TOP_FEATURES = 20

_SET_WORDS = {
    "all": "all features",
    "appearance": "appearance features (no size or shape)",
    "host_normalized": "host-normalized features",
    "context": "context features",
    "shape": "shape features",
    "host_only": "host-only features (the parenchyma shell alone)",
    "scan_indicator": "the scan indicator alone",
}


_BASELINE_WORDS = {"host_only": "host only", "scan_indicator": "scan indicator"}


@dataclass(frozen=True)
class RealismVerdict:
    """The study's answer in one label and one paragraph, with the reasons to doubt it.

    Attributes
    ----------
    label
        ``"distinguishable"``, ``"indistinguishable"``, ``"inconclusive"`` or ``"untested"``
        (module docstring).
    paragraph
        The verdict in words, with the numbers it rests on.
    warnings
        Sentences on what limits the verdict (baselines, sample size, multiple tests).
    feature_set, classifier, auc, auc_low, auc_high, p_value
        The best tumor-describing result (highest AUC, then lowest p); ``None``/NaN when untested.
    """

    label: VerdictLabel
    paragraph: str
    warnings: tuple[str, ...]
    feature_set: str | None
    classifier: str | None
    auc: float
    auc_low: float
    auc_high: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def realism_verdict(
    c2st: Sequence[C2STResult],
    *,
    alpha: float = 0.05,
    min_per_side: int = MIN_PER_SIDE,
    min_groups: int = MIN_GROUPS,
) -> RealismVerdict:
    """Apply the verdict rule of the module docstring to two-sample test results.

    Parameters
    ----------
    c2st
        One result per feature set and classifier.
    alpha
        Significance level of the permutation p-value.
    min_per_side, min_groups
        Below these sample and group counts an "indistinguishable" becomes "inconclusive".
    """
    tumor_sets = [r for r in c2st if r.feature_set not in BASELINE_SETS]
    if not tumor_sets:
        what = "only baselines" if c2st else "no two-sample test"
        return RealismVerdict(
            "untested", f"Realism was not tested ({what}).", (), None, None, *[math.nan] * 4
        )
    best = max(tumor_sets, key=lambda r: (_num(r.auc, -1.0), -_num(r.p_value, 2.0)))
    separated = _separates(best, alpha)
    warnings: list[str] = []
    few = best.n_real < min_per_side or best.n_synthetic < min_per_side
    if few or best.n_groups < min_groups:
        warnings.append(
            f"Few samples: {best.n_real} real and {best.n_synthetic} synthetic in "
            f"{best.n_groups} cross-validation groups (at least {min_per_side} per side and "
            f"{min_groups} groups wanted): the AUC interval is wide and a real difference can "
            "go unseen."
        )
    n_tests = len(tumor_sets)
    if separated and n_tests > 1 and best.p_value * n_tests >= alpha:
        warnings.append(
            f"p = {_p(best.p_value)} is the best of {n_tests} set x classifier tests; "
            f"Bonferroni-corrected it is {_p(min(1.0, best.p_value * n_tests))}: treat the "
            "difference as tentative (with N label permutations p cannot go below 1/(N+1): "
            "more permutations give finer p-values)."
        )
    below = [r for r in c2st if r.auc_high < 0.5]
    if below:
        warnings.append(
            "AUC interval below 0.5 for "
            + ", ".join(f"{r.feature_set}/{r.classifier} ({_auc_ci(r)})" for r in below)
            + ": the classifier does worse than chance across groups, a sign of few or "
            "heterogeneous groups, not of realism."
        )
    baselines = [r for r in c2st if r.feature_set in BASELINE_SETS]
    high = [r for r in baselines if _separates(r, alpha)]
    for r in high:
        warnings.append(
            f"The {r.feature_set} baseline separates the groups too ({r.classifier}: "
            f"{_auc_ci(r)}, p = {_p(r.p_value)}): the classifier tells the scans apart, so part "
            "of the tumor-feature AUC may come from the scans, not the tumors. Compare in the "
            "same scans (host-matched: synthetic tumors inserted into the scans that hold the "
            "real ones)."
        )

    words = _SET_WORDS.get(best.feature_set, f"{best.feature_set} features")
    numbers = f"{_auc_ci(best)} on {words} ({best.classifier}, p = {_p(best.p_value)})"
    if separated:
        label: VerdictLabel = "distinguishable"
        paragraph = (
            f"A classifier {_strength(best.auc)} tells synthetic from real tumors: {numbers}."
        )
        appearance = [r for r in tumor_sets if r.feature_set == "appearance"]
        if best.feature_set != "appearance" and appearance:
            top = max(appearance, key=lambda r: _num(r.auc, -1.0))
            paragraph += (
                f" On appearance alone (no size or shape): {_auc_ci(top)} ({top.classifier}, "
                f"p = {_p(top.p_value)})."
            )
    else:
        label = (
            "inconclusive" if warnings and warnings[0].startswith("Few") else "indistinguishable"
        )
        paragraph = (
            "No classifier tells synthetic from real tumors better than chance"
            + (" (not shown to differ: too few samples to say they are alike)" if label ==
               "inconclusive" else "")
            + f": the best is {numbers}."
        )  # fmt: skip
    if baselines:
        listed = "; ".join(
            f"{_BASELINE_WORDS.get(name, name)} "
            + ", ".join(
                f"{_auc_ci(r)} ({r.classifier})" for r in baselines if r.feature_set == name
            )
            for name in dict.fromkeys(r.feature_set for r in baselines)
        )
        if high:
            paragraph += f" Baselines: {listed}: the scans themselves differ (see the warnings)."
        elif separated:
            paragraph += f" Baselines: {listed}: the difference is in the tumors, not the scans."
        else:
            paragraph += f" Baselines: {listed}."
    return RealismVerdict(
        label, paragraph, tuple(warnings), best.feature_set, best.classifier,
        best.auc, best.auc_low, best.auc_high, best.p_value,
    )  # fmt: skip


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    rows: Sequence[TumorFeatures],
    c2st: Sequence[C2STResult],
    differences: Sequence[FeatureDifference],
    sentences: Sequence[str],
    settings: Mapping[str, Any],
    separability: Sequence[SeparabilityResult] = (),
    tsne: np.ndarray | None = None,
    figures: Mapping[str, str | os.PathLike[str]] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.json`` into ``out_dir`` (created if needed), atomically.

    Parameters
    ----------
    out_dir
        Output folder.
    rows
        The samples of the test (whole tumors or their patches), in the order of each result's
        ``oof_score``; counted per source, and listed in ``report.json`` (identity and size; the
        feature values stay in the per-case cache).
    c2st, differences, sentences
        Two-sample test results, per-feature differences (largest first, as
        :mod:`tumorsynth.realism.compare` sorts them) and the differences in words.
    settings
        How the study ran; stored as given (NaN as ``null``).
    separability, tsne
        Organ-separability results and the t-SNE coordinates ``(n, 2)``, when run.
    figures
        Figure name -> PNG path (relative to ``out_dir``, or absolute inside it), linked from
        ``report.md``.
    descriptions
        Feature name -> words, shown in the per-feature table (default:
        :data:`~tumorsynth.realism.features.FEATURE_DESCRIPTIONS`).

    Returns
    -------
    tuple of Path
        ``(report.md, report.json)``.
    """
    verdict = realism_verdict(c2st)
    with output_dir(out_dir) as folder:
        links = {name: _relative(Path(p), folder) for name, p in (figures or {}).items()}
        data = {
            "settings": dict(settings),
            "counts": _counts(rows),
            "verdict": verdict.to_dict(),
            "c2st": [r.to_dict() for r in c2st],
            "differences": [d.to_dict() for d in differences],
            "sentences": list(sentences),
            "separability": [s.to_dict() for s in separability],
            "tsne": None if tsne is None else np.asarray(tsne, dtype=float).tolist(),
            "figures": links,
            "samples": [_sample(row) for row in rows],
        }
        report_json = folder / "report.json"
        with atomic_path(report_json) as tmp:
            text = json.dumps(nan_to_none(plain_json(data)), indent=2, allow_nan=False)
            tmp.write_text(text + "\n", encoding="utf-8")
        report_md = folder / "report.md"
        markdown = render_markdown(
            rows=rows, c2st=c2st, differences=differences, sentences=sentences,
            settings=settings, separability=separability, figures=links, verdict=verdict,
            descriptions=FEATURE_DESCRIPTIONS if descriptions is None else descriptions,
        )  # fmt: skip
        with atomic_path(report_md) as tmp:
            tmp.write_text(markdown, encoding="utf-8")
    return report_md, report_json


def render_markdown(
    *,
    rows: Sequence[TumorFeatures],
    c2st: Sequence[C2STResult],
    differences: Sequence[FeatureDifference],
    sentences: Sequence[str],
    settings: Mapping[str, Any],
    separability: Sequence[SeparabilityResult] = (),
    figures: Mapping[str, str] | None = None,
    verdict: RealismVerdict | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> str:
    """``report.md`` as a string (see :func:`write_report`)."""
    verdict = verdict or realism_verdict(c2st)
    descriptions = descriptions or {}
    lines = ["# Realism of synthetic tumors", "", "## What was compared", ""]
    counts = _counts(rows)
    for source in ("real", "synthetic"):
        c = counts[source]
        organs = ", ".join(f"{organ} {n}" for organ, n in c["organs"].items()) or "none"
        patches = f" ({c['samples']} samples: patches)" if c["samples"] != c["tumors"] else ""
        lines.append(
            f"- {source}: {c['tumors']} tumors{patches} in {c['cases']} cases from "
            f"{c['groups']} scans; per organ: {organs}"
        )
    lines += ["", f"## Verdict: {verdict.label}", "", verdict.paragraph, ""]
    lines += [f"> **Warning.** {w}\n" for w in verdict.warnings]
    if c2st:
        lines += [
            "## Classifier two-sample test",
            "",
            "Cross-validated ROC AUC of telling synthetic (1) from real (0) samples, computed "
            "within each fold and averaged over folds and repeats, with its 95% interval "
            "(bootstrap over scans, or over cases inside host-matched scans); p: share of label "
            "permutations with an AUC at least as high; null: mean and 95th percentile of the "
            "permutation AUCs.",
            "",
            "| feature set | classifier | AUC [95% interval] | p | null mean | null 95th pct "
            "| features | real / synthetic / groups | note |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in c2st:
            lines.append(
                f"| {r.feature_set} | {r.classifier} | {_auc_ci(r)} | {_p(r.p_value)} | "
                f"{_f2(r.null_auc_mean)} | {_f2(r.null_auc_95)} | {r.n_features} | "
                f"{r.n_real} / {r.n_synthetic} / {r.n_groups} | {_cell(r.note)} |"
            )
        best = [r for r in c2st if (r.feature_set, r.classifier) ==
                (verdict.feature_set, verdict.classifier)]  # fmt: skip
        if best and best[0].top_features:
            top = ", ".join(f"{name} ({_g(w)})" for name, w in best[0].top_features[:8])
            how = (
                "signed coefficient on standardized features: positive means larger values "
                "look synthetic"
                if best[0].classifier == "logistic"
                else "impurity importance"
            )
            lines += ["", f"Features the best classifier leaned on most ({how}): {top}."]
        lines.append("")
    if sentences:
        lines += ["## Largest differences", ""]
        lines += [f"- {s}" for s in sentences]
        lines.append("")
    if differences:
        shown = list(differences)[:TOP_FEATURES]
        lines += [
            f"## Per-feature differences (top {len(shown)} of {len(differences)})",
            "",
            "Two-sample Kolmogorov-Smirnov statistic and p-value (not corrected for the number "
            "of features), medians with interquartile range [Q1, Q3], effect = (synthetic "
            "median - real median) / pooled robust standard deviation (positive: synthetic "
            "higher).",
            "",
            "| feature | KS | p | real median [IQR] | synthetic median [IQR] | effect | meaning |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in shown:
            lines.append(
                f"| {d.name} | {_f2(d.ks)} | {_p(d.p_value)} | {_g(d.median_real)} "
                f"{_iqr(d.iqr_real)} | {_g(d.median_synthetic)} {_iqr(d.iqr_synthetic)} | "
                f"{_g(d.effect)} | {_cell(descriptions.get(d.name, ''))} |"
            )
        lines.append("")
    if separability:
        lines += _separability_lines(separability)
    if figures:
        lines += ["## Figures", ""]
        lines += [f"- {name}: [{path}]({path})\n\n  ![{name}]({path})" for name, path in
                  figures.items()]  # fmt: skip
        lines.append("")
    lines += ["## Settings", "", "```json"]
    lines.append(json.dumps(nan_to_none(plain_json(dict(settings))), indent=2, allow_nan=False))
    lines += ["```", ""]
    return "\n".join(lines)


def _separability_lines(results: Sequence[SeparabilityResult]) -> list[str]:
    organs = list(dict.fromkeys(o for r in results for o in r.organs))
    lines = [
        "## Organ separability",
        "",
        "Can the organ be told from the tumor alone? Precision and recall per organ (mean ± std "
        "over repeated stratified cross-validation); chance accuracy is about "
        f"1/{len(organs)} for balanced organs.",
        "",
        "| classifier | accuracy | " + " | ".join(f"{o} precision | {o} recall" for o in organs)
        + " |",
        "|---|---|" + "---|---|" * len(organs),
    ]  # fmt: skip
    for r in results:
        cells = []
        for organ in organs:
            cells.append(_pm(r.precision.get(organ, math.nan), r.precision_std.get(organ)))
            cells.append(_pm(r.recall.get(organ, math.nan), r.recall_std.get(organ)))
        lines.append(
            f"| {r.classifier} | {_pm(r.accuracy, r.accuracy_std)} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def _counts(rows: Sequence[TumorFeatures]) -> dict[str, dict[str, Any]]:
    """Per source: samples, tumors, cases, scans (groups) and tumors per organ."""
    counts: dict[str, dict[str, Any]] = {}
    for source in ("real", "synthetic"):
        mine = [r for r in rows if r.source == source]
        tumors = {(r.case, r.tumor): r.organ for r in mine}
        counts[source] = {
            "samples": len(mine),
            "tumors": len(tumors),
            "cases": len({r.case for r in mine}),
            "groups": len({r.group for r in mine}),
            "organs": dict(sorted(Counter(tumors.values()).items())),
        }
    return counts


def _sample(row: TumorFeatures) -> dict[str, Any]:
    keys = ("case", "group", "source", "organ", "tumor", "patch", "volume_ml", "diameter_mm")
    return {key: getattr(row, key) for key in keys}


def _relative(path: Path, folder: Path) -> str:
    if path.is_absolute():
        try:
            return path.relative_to(folder).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()


def _separates(result: C2STResult, alpha: float) -> bool:
    return bool(result.auc_low > 0.5 and result.p_value <= alpha)


def _strength(auc: float) -> str:
    if auc >= 0.9:
        return "easily"
    return "clearly" if auc >= 0.75 else "weakly"


def _num(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _f2(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "n/a"


def _auc_ci(r: C2STResult) -> str:
    return f"AUC {_f2(r.auc)} [{_f2(r.auc_low)}, {_f2(r.auc_high)}]"


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _g(value: float) -> str:
    """A measured value with sensible digits: 95.3, 0.871, 1234, 3.2e-05."""
    if not math.isfinite(value):
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.01 or size == 0:
        return f"{value:.3g}"
    return f"{value:.1e}"


def _iqr(pair: Sequence[float]) -> str:
    return f"[{_g(pair[0])}, {_g(pair[1])}]"


def _cell(text: str | None) -> str:
    """Text for a markdown table cell: no line breaks, pipes escaped."""
    return (text or "").replace("\n", " ").replace("|", "\\|")


def _pm(value: float, std: float | None) -> str:
    if std is None or not math.isfinite(std):
        return _f2(value)
    return f"{_f2(value)} ± {_f2(std)}"
