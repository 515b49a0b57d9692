"""Experiments as data: several training arms, each trained, applied to test sets and evaluated,
then one comparison table (markdown + CSV) in the layout of DiffTumor's Table 2 (rows: training
arm, e.g. real / synthetic / mixed or source organ; column groups: test sets, e.g. target organs).

Example (``tumorsynth experiment --config exp.yaml``)::

    name: liver_real_vs_synthetic
    out_dir: runs/liver_exp
    base: unet_liver.yaml              # a training config, relative to this file (or a mapping)
    arms:
      - {name: real, set: {data.mode: real}}
      - {name: synthetic, set: {data.mode: synthetic}}
      - {name: mixed 50%, set: {data.mode: mixed, data.synthetic_fraction: 0.5}}
    test:
      - {name: liver (LiTS), images: data/lits/imagesTs, labels: data/lits/labelsTs,
         label_map: lits, organ: liver}
    evaluate: {tolerance_mm: 2.0, bootstrap: 1000}

Finished arms are skipped when the experiment is run again (resumable).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorsynth._settings import check_bounds, config_from_dict
from tumorsynth.errors import InputError
from tumorsynth.evaluation import evaluate_folders, write_report
from tumorsynth.io.atomic import atomic_path, ensure_writable_dir
from tumorsynth.training.config import (
    AT_LEAST_0,
    POSITIVE,
    TrainConfig,
    dotted_settings,
    merge_settings,
    read_settings,
)

__all__ = ["ExperimentConfig", "comparison_table", "load_experiment", "run_experiment"]

METRICS = (
    ("dsc_mean", "DSC"),
    ("nsd_mean", "NSD"),
    ("lesion_sensitivity", "Sens."),
    ("early_stage_sensitivity", "Early sens."),
    ("fp_per_case", "FP/case"),
)


@dataclass(frozen=True)
class TestSet:
    name: str
    images: str
    labels: str
    label_map: str = "tumorsynth"
    organ: str = "liver"


@dataclass(frozen=True)
class EvaluateSettings:
    """How each arm's predictions are scored: NSD tolerance (mm) and bootstrap resamples."""

    tolerance_mm: float = 2.0
    bootstrap: int = 1000


@dataclass(frozen=True)
class Arm:
    name: str
    train: TrainConfig


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    out_dir: Path
    arms: tuple[Arm, ...]
    test: tuple[TestSet, ...]
    evaluate: dict[str, Any] = field(default_factory=dict)


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read an experiment YAML; each arm is the base training config plus its ``set`` overrides."""
    path = Path(path)
    raw = read_settings(path)
    known = {"name", "out_dir", "base", "arms", "test", "evaluate"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(str(path), f"unknown setting(s) {unknown}; known are {sorted(known)}")
    for key in ("name", "out_dir", "arms", "test"):
        if key not in raw:
            raise InputError(str(path), f"'{key}' is required")
    base = raw.get("base", {})
    if isinstance(base, str):
        base = read_settings(path.parent / base if not Path(base).is_absolute() else base)
    for key in ("name", "out_dir"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise InputError(str(path), f"{key}: expected a string, found {raw[key]!r}")
    out_dir = Path(raw["out_dir"])
    if not isinstance(raw["arms"], list):
        raise InputError(str(path), f"arms: expected a list of arms, found {raw['arms']!r}")
    arms = []
    for index, arm in enumerate(raw["arms"]):
        if not isinstance(arm, dict) or "name" not in arm:
            raise InputError(f"{path}: arms[{index}]", "expected {name: ..., set: {...}}")
        overrides = dotted_settings(arm.get("set") or {})
        merged = merge_settings(base, overrides)
        merged = merge_settings(
            merged,
            {"name": arm["name"], "train": {"out_dir": str(out_dir / "arms" / _slug(arm["name"]))}},
        )
        arms.append(
            Arm(str(arm["name"]), TrainConfig.from_dict(merged, f"{path}: arm {arm['name']!r}"))
        )
    if not isinstance(raw["test"], list):
        raise InputError(str(path), f"test: expected a list of test sets, found {raw['test']!r}")
    tests = [
        config_from_dict(TestSet, test, str(path), key_path=f"test[{index}]")
        for index, test in enumerate(raw["test"])
    ]
    names = [a.name for a in arms]
    if len(set(names)) != len(names) or len({_slug(n) for n in names}) != len(names):
        raise InputError(str(path), f"arm names must be distinct, found {names}")
    evaluate = config_from_dict(
        EvaluateSettings, raw.get("evaluate") or {}, str(path), key_path="evaluate"
    )
    check_bounds(
        evaluate,
        {"tolerance_mm": POSITIVE, "bootstrap": AT_LEAST_0},
        str(path),
        key_path="evaluate",
    )
    return ExperimentConfig(
        str(raw["name"]), out_dir, tuple(arms), tuple(tests), dataclasses.asdict(evaluate)
    )


def run_experiment(config: ExperimentConfig, *, progress: bool = True) -> Path:
    """Train, predict and evaluate every arm on every test set; write ``comparison.md/.csv``."""
    # torch-backed parts are imported when an experiment runs, so reading a config stays light
    from tumorsynth.pipelines.predict import predict_files
    from tumorsynth.training.segmentation import train_segmentation

    out = ensure_writable_dir(config.out_dir)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    settings = config.evaluate
    for arm in config.arms:
        arm_dir = Path(arm.train.train.out_dir)
        checkpoint = arm_dir / "checkpoints" / "last"
        if not (arm_dir / "summary.json").exists():
            # the arm's folder is the experiment's own: an interrupted arm continues from its
            # last checkpoint (or starts again when it has none); finished arms are skipped
            train_segmentation(arm.train, resume=True, progress=progress)
        best = arm_dir / "checkpoints" / "best"
        use = best if (best / "config.json").exists() else checkpoint
        results[arm.name] = {}
        for test in config.test:
            pred_dir = arm_dir / "predictions" / _slug(test.name)
            eval_dir = arm_dir / "evaluation" / _slug(test.name)
            if not (eval_dir / "report.json").exists():
                predict_files(use, test.images, pred_dir, progress=progress)
                report = evaluate_folders(
                    pred_dir,
                    test.labels,
                    label_map_gt=test.label_map,
                    label_map_pred="tumorsynth",
                    organ=test.organ,
                    nsd_tolerance_mm=float(settings.get("tolerance_mm", 2.0)),
                    n_bootstrap=int(settings.get("bootstrap", 1000)),
                    progress=progress,
                )
                write_report(report, eval_dir)
            results[arm.name][test.name] = json.loads((eval_dir / "report.json").read_text())[
                "summary"
            ]
    markdown, table_csv = comparison_table(config, results)
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(markdown)
    with atomic_path(out / "comparison.csv") as tmp:
        tmp.write_text(table_csv)
    return out


def comparison_table(
    config: ExperimentConfig, results: dict[str, dict[str, dict[str, Any]]]
) -> tuple[str, str]:
    """Markdown (DiffTumor Table 2 layout, with 95% CIs where bootstrapped) and CSV."""
    tests = [t.name for t in config.test]
    header = ["arm"] + [f"{t}: {label}" for t in tests for _, label in METRICS]
    lines = [f"# {config.name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "arm",
            "test",
            *[key for key, _ in METRICS],
            *[f"{key}_ci_low" for key, _ in METRICS],
            *[f"{key}_ci_high" for key, _ in METRICS],
        ]
    )
    for arm in config.arms:
        cells = [arm.name]
        for test in tests:
            summary = results[arm.name][test]
            ci = summary.get("ci95", {})
            for key, _ in METRICS:
                cells.append(_cell(summary.get(key), ci.get(key)))
            writer.writerow(
                [
                    arm.name,
                    test,
                    *[summary.get(k) for k, _ in METRICS],
                    *[(ci.get(k) or [None, None])[0] for k, _ in METRICS],
                    *[(ci.get(k) or [None, None])[1] for k, _ in METRICS],
                ]
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "DSC and NSD (2 mm) are means over test cases with tumor; Sens. is lesion-level "
        "sensitivity; brackets are bootstrap 95% intervals over cases.",
    ]
    return "\n".join(lines) + "\n", buffer.getvalue()


def _cell(value: Any, ci: Any) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    if ci and ci[0] is not None and ci[1] is not None and ci[0] != ci[1]:
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "arm"
