"""What a scaling study writes: every arm in ``scaling.csv``, the mean and spread over seeds in
``scaling.md``, and one figure per test set (``scaling_TEST.png``): DSC, NSD, lesion sensitivity,
early-stage sensitivity and false positives per case against the number of real scans, one line
per synthetic setting, the band spanning the seeds (AbdomenAtlas 2.0's scaling curves).

matplotlib (the ``plots`` extra) is imported when the figures are drawn; without it the table
and the CSV are still written and the figures are named as missing.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tumorsynth.io.atomic import atomic_path
from tumorsynth.pipelines.experiment import METRICS, TestSet, slug

__all__ = ["curve_points", "scaling_table", "write_results"]

#: Columns of scaling.csv before the metrics.
_KEYS = ("curve", "real_count", "seed", "test")


def write_results(
    out: Path,
    name: str,
    curves: Sequence[str],
    real_counts: Sequence[int],
    tests: Sequence[TestSet],
    rows: Sequence[Mapping[str, Any]],
) -> list[Path]:
    """Write ``scaling.csv``, ``scaling.md`` and the figures into ``out``; their paths."""
    metrics = [key for key, _ in METRICS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*_KEYS, *metrics], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    written = [out / "scaling.csv", out / "scaling.md"]
    with atomic_path(written[0]) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    with atomic_path(written[1]) as tmp:
        tmp.write_text(scaling_table(name, curves, real_counts, tests, rows), encoding="utf-8")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.warn("matplotlib is not installed: no scaling figures", stacklevel=2)
        return written
    for test in tests:
        path = out / f"scaling_{slug(test.name)}.png"
        _draw(path, f"{name}: {test.name}", curves, real_counts, test.name, rows)
        written.append(path)
    return written


def curve_points(
    rows: Sequence[Mapping[str, Any]], curve: str, test: str, metric: str
) -> list[tuple[int, float, float, float, int]]:
    """``(real count, mean, min, max, seeds)`` of one curve's metric, by real count; seeds
    whose metric is undefined (no tumor to score) are left out.

    Examples
    --------
    >>> rows = [{"curve": "a", "test": "t", "real_count": 1, "seed": s, "dsc_mean": v}
    ...         for s, v in enumerate([0.5, 0.7, None])]
    >>> curve_points(rows, "a", "t", "dsc_mean")
    [(1, 0.6, 0.5, 0.7, 2)]
    """
    by_count: dict[int, list[float]] = {}
    for row in rows:
        if row["curve"] == curve and row["test"] == test and row.get(metric) is not None:
            by_count.setdefault(int(row["real_count"]), []).append(float(row[metric]))
    return [
        (n, round(float(np.mean(v)), 12), min(v), max(v), len(v))
        for n, v in sorted(by_count.items())
    ]


def scaling_table(
    name: str,
    curves: Sequence[str],
    real_counts: Sequence[int],
    tests: Sequence[TestSet],
    rows: Sequence[Mapping[str, Any]],
) -> str:
    """Markdown: per test set, a row per curve and number of real scans, each metric's mean
    over seeds with its range."""
    lines = [f"# {name}", ""]
    for test in tests:
        lines += [
            f"## {test.name} ({test.organ})",
            "",
            "| synthetic | real scans | seeds | " + " | ".join(lab for _, lab in METRICS) + " |",
            "|" + "---|" * (3 + len(METRICS)),
        ]
        for curve in curves:
            points = {
                key: {p[0]: p for p in curve_points(rows, curve, test.name, key)}
                for key, _ in METRICS
            }
            for n in real_counts:
                seeds = {
                    r["seed"]
                    for r in rows
                    if r["curve"] == curve and r["test"] == test.name and r["real_count"] == n
                }
                if not seeds:
                    continue
                cells = [_cell(points[key].get(n)) for key, _ in METRICS]
                lines.append(f"| {curve} | {n} | {len(seeds)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(
        "Means over seeds, [min, max] across seeds. DSC and NSD are means over test cases with "
        "tumor; Sens. is lesion-level sensitivity, Early sens. for lesions under 2 cm. n/a: no "
        "tumor to score. A curve with no arm at 0 real scans trains on real scans only."
    )
    return "\n".join(lines) + "\n"


def _cell(point: tuple[int, float, float, float, int] | None) -> str:
    if point is None:
        return "n/a"
    _, mean, low, high, _ = point
    return f"{mean:.3f}" if low == high else f"{mean:.3f} [{low:.2f}, {high:.2f}]"


def _draw(
    path: Path,
    title: str,
    curves: Sequence[str],
    real_counts: Sequence[int],
    test: str,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * len(METRICS), 3.4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(METRICS))
    colors = [f"C{i % 10}" for i in range(len(curves))]
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        drawn = {curve: curve_points(rows, curve, test, key) for curve in curves}
        if not any(drawn.values()):
            ax.text(0.5, 0.5, "n/a: no tumor to score", ha="center", transform=ax.transAxes)
        for curve, color in zip(curves, colors, strict=True):
            points = drawn[curve]
            if not points:
                continue
            n, mean, low, high, _ = (np.array(v, dtype=float) for v in zip(*points, strict=True))
            ax.plot(n, mean, "o-", color=color, label=curve, markersize=4)
            if np.any(high > low):
                ax.fill_between(n, low, high, color=color, alpha=0.18, linewidth=0)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xticks(list(real_counts), [str(n) for n in real_counts])
        ax.set_xlabel("annotated real scans")
        ax.set_title(label)
        if key != "fp_per_case":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    figure.suptitle(title + "  (band: range over seeds)", fontsize=10)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
