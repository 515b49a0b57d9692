"""The files of ``tumorsynth turing score``: ``score.md``, ``score.json``, ``answers.csv``,
``summary.csv`` and ``score.png``, from a :class:`~tumorsynth.turing.score.StudyScore`.

Every file is written atomically; re-running overwrites them. matplotlib (the ``plots`` extra) is
imported only to draw the figure; without it the other files are written and a warning says so.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tumorsynth.evaluation.report import nan_to_none
from tumorsynth.io.atomic import atomic_path, output_dir
from tumorsynth.turing.score import FEW_ITEMS, GroupScore, Rates, ReaderScore, StudyScore
from tumorsynth.turing.score_stats import Interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "ANSWER_COLUMNS",
    "REFERENCE",
    "SUMMARY_COLUMNS",
    "answer_rows",
    "plot_score",
    "render_markdown",
    "reader_table",
    "score_json",
    "summary_rows",
    "verdict",
    "write_score",
]

FORMAT = "tumorsynth-turing-score/1"

#: The published reference point, quoted in every report.
REFERENCE = (
    "Published reference point: FreeTumor (Wu et al.) reported a reader study with 13 readers "
    "who reached 51% sensitivity and 61% accuracy on its synthetic and real tumors; DiffTumor "
    "(Chen et al., CVPR 2024) and FreeTumor lay out their reader-study tables as here (rows organ "
    "and size class; columns sensitivity, specificity, accuracy, n)."
)

DEFINITIONS = (
    "Positive = synthetic. TP = synthetic item called synthetic, FN = synthetic called real, "
    "TN = real called real, FP = real called synthetic; n = answers.",
    "Sensitivity = TP / (TP + FN): share of synthetic items recognised as synthetic. "
    "Specificity = TN / (TN + FP): share of real items called real. Accuracy = (TP + TN) / n. "
    "Balanced accuracy = (sensitivity + specificity) / 2 (chance 50% whatever the mix). "
    "Perfectly realistic synthetic tumors put sensitivity and accuracy at chance (50%).",
    "Per reader: 95% Wilson score intervals.",
    "Pooled rows and every table by organ, size class and confidence: answers of one reader, and "
    "answers to one item, are correlated, so the 95% interval is a two-way cluster bootstrap "
    "(readers and items each resampled with replacement, an answer weighted by how often its "
    "reader and its item were drawn; percentile interval; resamples without a synthetic or a "
    "real item are left out of that rate). It tends to err on the wide side; with one reader it "
    "is a bootstrap over items. A rate whose answers were all right (or all wrong) cannot vary "
    "under resampling and gets the Wilson interval of its counts instead. Groups marked * have "
    f"fewer than {FEW_ITEMS} items: their interval is unreliable.",
    "AUC (per reader): area under the ROC curve of the confidence-weighted call (+confidence when "
    "called synthetic, -confidence when called real), positive = synthetic; 0.5 = no better than "
    "chance, above 0.5 when the reader is right more often when more confident.",
    "Agreement: Fleiss' kappa over the items every included reader answered (1 = complete "
    "agreement, 0 = what chance gives), with a 95% percentile bootstrap over those items; mean "
    "pairwise agreement = average over items of the share of reader pairs that gave the same "
    "call; unanimous = share of items on which all readers gave the same call.",
)

ANSWER_COLUMNS = (
    "reader",
    "item_id",
    "position",
    "truth",
    "organ",
    "size_class",
    "diameter_mm",
    "call",
    "correct",
    "confidence",
    "seconds_viewed",
    "comment",
    "answered_at",
)
_RATE_NAMES = ("sensitivity", "specificity", "accuracy", "balanced_accuracy")
SUMMARY_COLUMNS = (
    "row",
    "reader",
    "interval",
    "answered",
    "total",
    "partial",
    "items",
    "tp",
    "fn",
    "tn",
    "fp",
    *(f"{name}{end}" for name in _RATE_NAMES for end in ("", "_low", "_high")),
    "auc",
)


def write_score(
    score: StudyScore, title: str, out: str | os.PathLike[str], *, plots: bool = True
) -> dict[str, Path]:
    """Write the report of ``score`` into ``out``; returns file kind -> path."""
    files: dict[str, Path] = {}
    with output_dir(out) as folder:
        files["markdown"] = _write_text(folder / "score.md", render_markdown(score, title))
        data = score_json(score, title)
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        files["json"] = _write_text(folder / "score.json", text)
        files["answers"] = _write_text(
            folder / "answers.csv", _csv(ANSWER_COLUMNS, answer_rows(score))
        )
        files["summary"] = _write_text(
            folder / "summary.csv", _csv(SUMMARY_COLUMNS, summary_rows(score))
        )
        if plots:
            try:
                import matplotlib  # noqa: F401  (optional extra tumorsynth[plots])
            except ImportError:
                warnings.warn(
                    "matplotlib is not installed: no score.png (pip install 'tumorsynth[plots]')",
                    stacklevel=2,
                )
            else:
                files["plot"] = plot_score(score, title, folder / "score.png")
    return files


def render_markdown(score: StudyScore, title: str) -> str:
    """``score.md``: verdict, reference point, tables, agreement, definitions, settings."""
    pooled = score.pooled
    lines = [
        f"# Reader study: {title}",
        "",
        f"{len(score.readers)} reader(s), {pooled.counts.n} answers on {pooled.n_items} items "
        f"({pooled.counts.n_synthetic} answers to synthetic items, {pooled.counts.n_real} to real "
        "ones). Positive = synthetic.",
        "",
        "## Verdict",
        "",
        verdict(score),
        "",
        REFERENCE,
        "",
        "## Readers",
        "",
        reader_table(score),
        "",
    ]
    lines += [
        f"- {name}: left out, {k} answer(s) (fewer than --min-answers {score.min_answers})."
        for name, k in score.excluded
    ]
    lines += [
        f"- {r.reader}: stopped early, {r.answered} of {r.total} items answered (included)."
        for r in score.readers
        if r.partial
    ]
    lines += [
        f"- {r.reader}: AUC not computed ({r.auc_note})." for r in score.readers if r.auc_note
    ]
    if score.excluded or any(r.partial or r.auc_note for r in score.readers):
        lines.append("")
    lines += [
        "## By organ",
        "",
        _group_table(("organ",), score.by_organ),
        "",
        "## By size class",
        "",
        _group_table(("size class",), score.by_size_class),
        "",
        "## By organ and size class",
        "",
        _group_table(("organ", "size class"), score.by_organ_size_class),
        "",
        "## By confidence (1 = guess, 5 = certain)",
        "",
        _group_table(("confidence",), score.by_confidence),
        "",
        "## Agreement between readers",
        "",
        _agreement_text(score),
        "",
        "## Definitions",
        "",
        *(f"- {d}" for d in DEFINITIONS),
        "",
        "## Settings",
        "",
        f"- readers left out below {score.min_answers} answer(s); bootstrap: "
        f"{score.n_resamples} resamples, seed {score.seed} (the same seed gives the same "
        "intervals).",
        "- answers.csv: one row per scored answer joined with the key; summary.csv: one row per "
        "reader and the pooled row; score.json: everything above, machine readable.",
        "",
    ]
    return "\n".join(lines)


def verdict(score: StudyScore) -> str:
    """The plain-language verdict: pooled rates with their intervals and whether chance (50%)
    lies inside the interval (of balanced accuracy when the mix of real and synthetic answers is
    not about even, since plain accuracy's chance level then is not 50%)."""
    rates, counts = score.pooled, score.pooled.counts
    text = (
        f"Readers called {_pct(counts.sensitivity)} of synthetic tumors synthetic "
        f"{_ci(rates.sensitivity_ci)} and {_pct(counts.specificity)} of real tumors real "
        f"{_ci(rates.specificity_ci)}; accuracy {_pct(counts.accuracy)} {_ci(rates.accuracy_ci)}"
    )
    share = counts.n_synthetic / counts.n
    value, (low, high) = counts.accuracy, rates.accuracy_ci
    if abs(share - 0.5) > 0.05:
        value, (low, high) = counts.balanced_accuracy, rates.balanced_accuracy_ci
        text += (
            f". {_pct(share)} of the answers were to synthetic items, so accuracy's chance level "
            f"is not 50% (calling everything {'real' if share < 0.5 else 'synthetic'} scores "
            f"{_pct(max(share, 1 - share))}); balanced accuracy (mean of sensitivity and "
            f"specificity) is {_pct(value)} {_ci((low, high))}"
        )
    if not (math.isfinite(low) and math.isfinite(high)):
        return text + ": no interval could be computed."
    if low > 0.5:
        text += (
            ", above chance (50% lies below the interval): readers told synthetic from real "
            "tumors apart more often than guessing would"
        )
    elif high < 0.5:
        text += (
            ", below chance (50% lies above the interval): readers systematically took synthetic "
            "tumors for real ones and real ones for synthetic"
        )
    else:
        text += (
            ", close to chance (50%, inside the interval): the synthetic tumors were hard to "
            "tell apart from real ones"
            if abs(value - 0.5) <= 0.05
            else ", but chance (50%) is inside the interval: these answers do not show that the "
            "readers could tell synthetic from real tumors apart better than guessing"
        )
        if high - low > 0.2:
            text += (
                f"; the interval is wide ({counts.n} answers on {rates.n_items} items from "
                f"{rates.n_readers} reader(s)), more readers and items would narrow it"
            )
    text += "."
    if len(score.readers) > 1:
        above = [r.reader for r in score.readers if r.rates.accuracy_ci[0] > 0.5]
        text += (
            f" Individually, {len(above)} of {len(score.readers)} readers scored above chance "
            "(their accuracy's Wilson interval above 50%)"
            + (f": {', '.join(above)}." if above else ".")
        )
    return text


def reader_table(score: StudyScore) -> str:
    """The main table: one row per reader (Wilson intervals) and the pooled row (bootstrap)."""
    header = (
        "| reader | answered | sensitivity | specificity | accuracy | TP | FN | TN | FP | AUC |"
    )
    rows = [header, "|" + "---|" * 10]
    for r in score.readers:
        c = r.rates.counts
        answered = f"{r.answered}/{r.total}" if r.total is not None else str(r.answered)
        rows.append(
            f"| {_cell(r.reader)} | {answered} | {_rate(c.sensitivity, r.rates.sensitivity_ci)} "
            f"| {_rate(c.specificity, r.rates.specificity_ci)} "
            f"| {_rate(c.accuracy, r.rates.accuracy_ci)} | {c.tp} | {c.fn} | {c.tn} | {c.fp} "
            f"| {_number(r.auc)} |"
        )
    p, c = score.pooled, score.pooled.counts
    rows.append(
        f"| **pooled** | {c.n} | {_rate(c.sensitivity, p.sensitivity_ci)} "
        f"| {_rate(c.specificity, p.specificity_ci)} | {_rate(c.accuracy, p.accuracy_ci)} "
        f"| {c.tp} | {c.fn} | {c.tn} | {c.fp} | |"
    )
    return "\n".join(rows) + (
        "\n\nPercentages with 95% intervals: Wilson per reader, two-way cluster bootstrap "
        "(readers x items) pooled."
    )


def answer_rows(score: StudyScore) -> list[dict[str, Any]]:
    """One row per scored answer, joined with the key (``ANSWER_COLUMNS``). Free text (reader
    names, comments) that a spreadsheet would run as a formula is prefixed with ``'``."""
    rows = []
    for s in score.scored:
        a, e = s.answer, s.entry
        rows.append(
            {
                "reader": _no_formula(a.reader),
                "item_id": a.item_id,
                "position": a.position,
                "truth": e.truth,
                "organ": e.organ,
                "size_class": e.size_class,
                "diameter_mm": round(float(e.diameter_mm), 3),
                "call": a.call,
                "correct": int(s.correct),
                "confidence": a.confidence,
                "seconds_viewed": "" if a.seconds_viewed is None else a.seconds_viewed,
                "comment": _no_formula(a.comment),
                "answered_at": a.answered_at,
            }
        )
    return rows


def summary_rows(score: StudyScore) -> list[dict[str, Any]]:
    """One row per reader and a ``pooled`` row (``SUMMARY_COLUMNS``); empty cells for NaN."""
    rows = [
        {
            "row": "reader",
            "reader": _no_formula(r.reader),
            "answered": r.answered,
            "total": "" if r.total is None else r.total,
            "partial": int(r.partial),
            "auc": _csv_number(r.auc),
            **_rate_cells(r.rates),
        }
        for r in score.readers
    ]
    pooled = score.pooled.counts.n
    rows.append({"row": "pooled", "reader": "", "answered": pooled, **_rate_cells(score.pooled)})
    return rows


def score_json(score: StudyScore, title: str) -> dict[str, Any]:
    """Everything of ``score.md``, machine readable (NaN -> null)."""
    data = {
        "format": FORMAT,
        "title": title,
        "positive": "synthetic",
        "verdict": verdict(score),
        "reference": REFERENCE,
        "definitions": list(DEFINITIONS),
        "settings": {
            "min_answers": score.min_answers,
            "bootstrap_resamples": score.n_resamples,
            "seed": score.seed,
            "reader_interval": "wilson",
            "pooled_interval": "two-way cluster bootstrap (readers x items), percentile",
        },
        "readers": [_reader_json(r) for r in score.readers],
        "excluded": [{"reader": name, "answers": k} for name, k in score.excluded],
        "pooled": _rates_json(score.pooled),
        "by_organ": _groups_json(("organ",), score.by_organ),
        "by_size_class": _groups_json(("size_class",), score.by_size_class),
        "by_organ_size_class": _groups_json(("organ", "size_class"), score.by_organ_size_class),
        "by_confidence": _groups_json(("confidence",), score.by_confidence),
        "agreement": {
            "readers": list(score.agreement.readers),
            "items": score.agreement.n_items,
            "computable": score.agreement.computable,
            "note": score.agreement.note,
            "fleiss_kappa": score.agreement.kappa,
            "fleiss_kappa_ci95": list(score.agreement.kappa_ci),
            "pairwise_agreement": score.agreement.pairwise_agreement,
            "unanimous": score.agreement.unanimous,
        },
    }
    result: dict[str, Any] = nan_to_none(data)
    return result


def plot_score(score: StudyScore, title: str, path: str | os.PathLike[str]) -> Path:
    """``score.png``: per-reader sensitivity and specificity (Wilson bars) and pooled (bootstrap
    bars) on top; accuracy by size class and by confidence (bootstrap bars) below; dashed line:
    chance (50%)."""
    from tumorsynth.evaluation.plots import new_figure, save_figure

    figure = new_figure(11.0, 7.5)
    grid = figure.add_gridspec(2, 2, height_ratios=(1.15, 1.0))
    top = figure.add_subplot(grid[0, :])
    names = [r.reader for r in score.readers] + ["pooled"]
    labels = [f"{r.reader}\nn={r.answered}" for r in score.readers]
    labels.append(f"pooled\nn={score.pooled.counts.n}")
    all_rates = [r.rates for r in score.readers] + [score.pooled]
    for offset, name, color, marker in (
        (-0.12, "sensitivity", "#c44e52", "o"),
        (0.12, "specificity", "#4c72b0", "s"),
    ):
        values = [getattr(rates.counts, name) for rates in all_rates]
        intervals = [getattr(rates, f"{name}_ci") for rates in all_rates]
        label = {
            "sensitivity": "sensitivity (synthetic called synthetic)",
            "specificity": "specificity (real called real)",
        }[name]
        _points(
            top, [i + offset for i in range(len(names))], values, intervals, color, marker, label
        )
    top.axvline(len(names) - 1.5, color="#999999", linewidth=0.8, linestyle=":")
    top.set_xticks(range(len(names)))
    if len(names) <= 12:
        top.set_xticklabels(labels, fontsize=8)
    else:
        top.set_xticklabels(labels, fontsize=8, rotation=40, ha="right", rotation_mode="anchor")
    top.set_xlim(-0.6, len(names) - 0.4)
    top.set_title(
        "Per reader (95% Wilson CI) and pooled (95% two-way cluster bootstrap CI)", fontsize=10
    )
    top.set_ylim(-0.02, 1.18)  # headroom above 100% for the legend, clear of every point
    top.legend(fontsize=8, loc="upper center", ncols=2, frameon=False)
    for axes, groups, heading in (
        (figure.add_subplot(grid[1, 0]), score.by_size_class, "size class"),
        (figure.add_subplot(grid[1, 1]), score.by_confidence, "confidence (1 guess, 5 certain)"),
    ):
        values = [g.rates.counts.accuracy for g in groups]
        intervals = [g.rates.accuracy_ci for g in groups]
        _points(axes, list(range(len(groups))), values, intervals, "#55a868", "D", "accuracy")
        axes.set_xticks(range(len(groups)))
        axes.set_xticklabels(
            [f"{' '.join(g.group)}\nn={g.rates.counts.n}" for g in groups], fontsize=8
        )
        axes.set_xlim(-0.6, max(len(groups), 1) - 0.4)
        axes.set_xlabel(heading, fontsize=9)
        axes.set_title(f"Accuracy by {heading.split(' (')[0]} (pooled, bootstrap CI)", fontsize=10)
    figure.suptitle(f"Reader study: {title}", fontsize=11)
    figure.tight_layout()
    return save_figure(figure, path)


def _points(
    axes: Axes,
    x: Sequence[float],
    values: Sequence[float],
    intervals: Sequence[Interval],
    color: str,
    marker: str,
    label: str,
) -> None:
    """Points with their interval bars (intervals that are NaN get no bar), chance line, 0..1."""
    for xi, value, (low, high) in zip(x, values, intervals):
        if not math.isfinite(value):
            continue
        error = None
        if math.isfinite(low) and math.isfinite(high):
            error = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
        axes.errorbar(xi, value, yerr=error, color=color, marker=marker, capsize=3, linewidth=1)
    axes.plot([], [], color=color, marker=marker, linestyle="none", label=label)
    axes.axhline(0.5, color="#555555", linestyle="--", linewidth=0.8)
    axes.text(1.0, 0.5, " chance", transform=axes.get_yaxis_transform(), fontsize=7, va="center")
    axes.set_ylim(-0.02, 1.05)
    axes.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    axes.set_yticklabels(["0%", "25%", "50%", "75%", "100%"], fontsize=8)
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)


def _group_table(columns: Sequence[str], groups: Sequence[GroupScore]) -> str:
    if not groups:
        return "(no answers)"
    head = " | ".join(columns)
    rows = [
        f"| {head} | sensitivity | specificity | accuracy | n (synthetic/real) | items | readers |",
        "|" + "---|" * (len(columns) + 6),
    ]
    for g in groups:
        r, c = g.rates, g.rates.counts
        mark = "*" if r.n_items < FEW_ITEMS else ""
        names = " | ".join(_cell(part) for part in g.group)
        rows.append(
            f"| {names}{mark} | {_rate(c.sensitivity, r.sensitivity_ci)} "
            f"| {_rate(c.specificity, r.specificity_ci)} | {_rate(c.accuracy, r.accuracy_ci)} "
            f"| {c.n} ({c.n_synthetic}/{c.n_real}) | {r.n_items} | {r.n_readers} |"
        )
    return "\n".join(rows)


def _agreement_text(score: StudyScore) -> str:
    a = score.agreement
    if not a.computable:
        return f"Fleiss' kappa: not computable ({a.note}; {len(a.readers)} reader(s) included)." + (
            f" Mean pairwise agreement {_pct(a.pairwise_agreement)}, unanimous on "
            f"{_pct(a.unanimous)} of {a.n_items} items."
            if a.n_items
            else ""
        )
    low, high = a.kappa_ci
    return (
        f"Fleiss' kappa {a.kappa:.2f} [95% CI {low:.2f} to {high:.2f}] over the {a.n_items} items "
        f"all {len(a.readers)} readers answered ({_kappa_words(a.kappa)}); mean pairwise "
        f"agreement {_pct(a.pairwise_agreement)}, unanimous on {_pct(a.unanimous)} of the items."
    )


def _kappa_words(kappa: float) -> str:
    """Landis and Koch's (1977) conventional labels."""
    for bound, words in (
        (0.0, "no agreement beyond chance"),
        (0.2, "slight agreement"),
        (0.4, "fair agreement"),
        (0.6, "moderate agreement"),
        (0.8, "substantial agreement"),
    ):
        if kappa <= bound:
            return words
    return "almost perfect agreement"


def _reader_json(r: ReaderScore) -> dict[str, Any]:
    return {
        "reader": r.reader,
        "answered": r.answered,
        "total": r.total,
        "partial": r.partial,
        "auc": r.auc,
        "auc_note": r.auc_note,
        "accuracy_by_confidence": {
            str(level): {"n": c.n, "correct": c.n_correct, "accuracy": c.accuracy}
            for level, c in r.by_confidence.items()
        },
        **_rates_json(r.rates),
    }


def _rates_json(rates: Rates) -> dict[str, Any]:
    c = rates.counts
    data: dict[str, Any] = {
        "interval": rates.method,
        "n": c.n,
        "n_synthetic": c.n_synthetic,
        "n_real": c.n_real,
        "items": rates.n_items,
        "readers": rates.n_readers,
        "tp": c.tp,
        "fn": c.fn,
        "tn": c.tn,
        "fp": c.fp,
    }
    for name in _RATE_NAMES:
        data[name] = getattr(c, name)
        data[f"{name}_ci95"] = list(getattr(rates, f"{name}_ci"))
    return data


def _groups_json(keys: Sequence[str], groups: Sequence[GroupScore]) -> list[dict[str, Any]]:
    return [{**dict(zip(keys, g.group)), **_rates_json(g.rates)} for g in groups]


def _rate_cells(rates: Rates) -> dict[str, Any]:
    c = rates.counts
    cells: dict[str, Any] = {
        "interval": rates.method,
        "items": rates.n_items,
        "tp": c.tp,
        "fn": c.fn,
        "tn": c.tn,
        "fp": c.fp,
    }
    for name in _RATE_NAMES:
        low, high = getattr(rates, f"{name}_ci")
        cells[name] = _csv_number(getattr(c, name))
        cells[f"{name}_low"] = _csv_number(low)
        cells[f"{name}_high"] = _csv_number(high)
    return cells


def _csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return path


def _no_formula(text: str) -> str:
    """Free text a spreadsheet would evaluate (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a
    leading ``'`` (OWASP's advice against CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else ""


def _number(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "n/a"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%" if math.isfinite(value) else "n/a"


def _rate(value: float, interval: Interval) -> str:
    if not math.isfinite(value):
        return "n/a"
    low, high = interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return _pct(value)
    return f"{100 * value:.0f}% [{100 * low:.0f}-{100 * high:.0f}]"


def _cell(text: str) -> str:
    """Text for a markdown table cell: pipes and line breaks would break the table."""
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _ci(interval: Interval) -> str:
    low, high = interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return "[95% CI n/a]"
    return f"[95% CI {100 * low:.0f}-{100 * high:.0f}%]"
