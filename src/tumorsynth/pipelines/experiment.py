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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorsynth._settings import (
    AT_LEAST_0,
    POSITIVE,
    bound_problems,
    config_from_dict,
    dotted_settings,
    merge_settings,
    parse_overrides,
    read_settings,
)
from tumorsynth._types import LabelMapSpec
from tumorsynth.errors import InputError
from tumorsynth.evaluation import evaluate_folders, write_report
from tumorsynth.io.atomic import atomic_path, ensure_writable_dir
from tumorsynth.training.config import TrainConfig, label_map_problems

__all__ = [
    "ArmSettings",
    "EvaluateSettings",
    "ExperimentConfig",
    "ExperimentSettings",
    "TestSet",
    "comparison_table",
    "load_experiment",
    "run_arm",
    "run_experiment",
    "slug",
    "test_set_problems",
]

METRICS = (
    ("dsc_mean", "DSC"),
    ("nsd_mean", "NSD"),
    ("lesion_sensitivity", "Sens."),
    ("early_stage_sensitivity", "Early sens."),
    ("fp_per_case", "FP/case"),
)


@dataclass(frozen=True)
class TestSet:
    """A labelled test set every arm is applied to.

    Attributes
    ----------
    name
        Column group of the comparison table.
    images
        Folder of the test CTs.
    labels
        Folder of their labels (same case names).
    label_map
        Label map of the labels (required): a preset, a JSON file or an inline {organ: id or [ids]}.
    organ
        The organ whose tumors are scored.
    """

    name: str
    images: str
    labels: str
    label_map: LabelMapSpec
    organ: str = "liver"

    def check(self) -> list[str]:
        return label_map_problems(self.label_map, "label_map")


@dataclass(frozen=True)
class EvaluateSettings:
    """How each arm's predictions are scored.

    Attributes
    ----------
    tolerance_mm
        NSD tolerance in mm.
    bootstrap
        Bootstrap resamples for the 95% intervals (0: none).
    """

    tolerance_mm: float = 2.0
    bootstrap: int = 1000

    def check(self) -> list[str]:
        return bound_problems(self, {"tolerance_mm": POSITIVE, "bootstrap": AT_LEAST_0})


@dataclass(frozen=True)
class ArmSettings:
    """One training arm as written: the base training config with some settings changed.

    Attributes
    ----------
    name
        Row of the comparison table (also the arm's folder, out_dir/arms/NAME).
    set
        Settings that differ from the base, dotted: {data.mode: real, optim.max_steps: 500}.
    """

    name: str
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentSettings:
    """An experiment file as written (``tumorsynth experiment --config FILE``).

    Attributes
    ----------
    name
        Title of the comparison table.
    out_dir
        Folder of the experiment (arms/NAME/ per arm, comparison.md, comparison.csv).
    base
        The training config every arm starts from: a YAML file (relative to this file) or a mapping.
    arms
        Training arms, each {name: .., set: {dotted.setting: value}}.
    test
        Test sets, each {name: .., images: DIR, labels: DIR, label_map: .., organ: ..}.
    evaluate
        How predictions are scored.
    """

    name: str = "experiment"
    out_dir: str = "runs/experiment"
    base: str | dict[str, Any] = field(default_factory=dict)
    arms: tuple[ArmSettings, ...] = ()
    test: tuple[TestSet, ...] = ()
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)

    def check(self) -> list[str]:
        problems = []
        if not self.out_dir:
            problems.append("out_dir: expected a folder for the experiment, found nothing")
        if not self.arms:
            problems.append("arms: expected at least one training arm {name, set}, found none")
        if not self.test:
            problems.append(
                "test: expected at least one test set {name, images, labels}, found none"
            )
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names) or len({slug(n) for n in names}) != len(names):
            problems.append(f"arms: arm names must be distinct, found {names}")
        if isinstance(self.base, dict):  # a file name is read (and checked) by load_experiment
            for arm in self.arms:
                try:
                    self.arm_config(arm)
                except InputError as exc:
                    problems.append(f"arm {arm.name!r}: {exc.message}")
        return problems

    def arm_config(self, arm: ArmSettings, *, inputs: bool = False) -> TrainConfig:
        """``base`` (a mapping) with the arm's settings, its run in ``out_dir/arms/NAME``
        (``inputs``: its scans must exist, as ``config_from_dict`` checks them)."""
        if not isinstance(self.base, dict):
            raise TypeError("base is a file name: load_experiment reads it first")
        merged = merge_settings(self.base, dotted_settings(arm.set))
        out = Path(self.out_dir) / "arms" / slug(arm.name)
        merged = merge_settings(merged, {"name": arm.name, "train": {"out_dir": str(out)}})
        return config_from_dict(TrainConfig, merged, f"arm {arm.name!r}", inputs=inputs)


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


def load_experiment(
    path: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] = ()
) -> ExperimentConfig:
    """Read an experiment YAML (``overrides`` as for :func:`~tumorsynth._settings.load_config`);
    each arm is the base training config plus its ``set`` overrides. Everything is checked
    (every arm, the test sets' folders) before anything is trained, all problems together."""
    path = Path(path)
    raw = read_settings(path)
    if isinstance(raw.get("base"), str):  # a training config file, relative to this one
        base = Path(raw["base"])
        raw = {**raw, "base": read_settings(base if base.is_absolute() else path.parent / base)}
    merged = merge_settings(raw, parse_overrides(overrides))
    settings = config_from_dict(ExperimentSettings, merged, str(path))
    problems, arms = [], []
    for arm in settings.arms:  # their scans, and the test sets, found now, not after training
        try:
            arms.append(Arm(arm.name, settings.arm_config(arm, inputs=True)))
        except InputError as exc:
            problems.append(f"arm {arm.name!r}: {exc.message}")
    problems += test_set_problems(settings.test)
    if problems:
        raise InputError(str(path), "; ".join(problems))
    return ExperimentConfig(
        settings.name,
        Path(settings.out_dir),
        tuple(arms),
        settings.test,
        dataclasses.asdict(settings.evaluate),
    )


def run_experiment(config: ExperimentConfig, *, progress: bool = True) -> Path:
    """Train, predict and evaluate every arm on every test set; write ``comparison.md/.csv``."""
    out = ensure_writable_dir(config.out_dir)
    results = {
        arm.name: run_arm(arm.train, config.test, config.evaluate, progress=progress)
        for arm in config.arms
    }
    markdown, table_csv = comparison_table(config, results)
    with atomic_path(out / "comparison.md") as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    with atomic_path(out / "comparison.csv") as tmp:
        tmp.write_text(table_csv, encoding="utf-8")
    return out


def run_arm(
    train: TrainConfig,
    tests: Sequence[TestSet],
    evaluate: Mapping[str, Any],
    *,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Train one arm (in ``train.train.out_dir``), predict every test set and evaluate it;
    ``{test name: report summary}``. What is done is not redone: a trained arm (its
    ``summary.json``) is not trained again, an evaluated test set (its ``report.json``) not
    predicted again, and an interrupted training continues from its last checkpoint."""
    # torch-backed parts are imported when an arm runs, so reading a config stays light
    from tumorsynth.pipelines.predict import predict_files
    from tumorsynth.training.segmentation import train_segmentation

    arm_dir = Path(train.train.out_dir)
    if not (arm_dir / "summary.json").exists():
        # the arm's folder is the study's own: an interrupted arm continues from its last
        # checkpoint (or starts again when it has none); finished arms are skipped
        train_segmentation(train, resume=True, progress=progress)
    best = arm_dir / "checkpoints" / "best"
    use = best if (best / "config.json").exists() else arm_dir / "checkpoints" / "last"
    summaries = {}
    for test in tests:
        pred_dir = arm_dir / "predictions" / slug(test.name)
        eval_dir = arm_dir / "evaluation" / slug(test.name)
        if not (eval_dir / "report.json").exists():
            predict_files(use, test.images, pred_dir, progress=progress)
            report = evaluate_folders(
                pred_dir,
                test.labels,
                label_map_gt=test.label_map,
                label_map_pred="tumorsynth",
                organ=test.organ,
                nsd_tolerance_mm=float(evaluate.get("tolerance_mm", 2.0)),
                n_bootstrap=int(evaluate.get("bootstrap", 1000)),
                progress=progress,
            )
            write_report(report, eval_dir)
        summaries[test.name] = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))[
            "summary"
        ]
    return summaries


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


def test_set_problems(tests: Sequence[TestSet]) -> list[str]:
    """A test set whose image or label folder is missing, as ``test[0].images: ..``."""
    problems = []
    for index, test in enumerate(tests):
        for key in ("images", "labels"):
            folder = getattr(test, key)
            if not Path(folder).is_dir():
                problems.append(f"test[{index}].{key}: expected a folder, found none at {folder}")
    return problems


def slug(name: str) -> str:
    """``name`` as a folder name: runs of other characters than letters, digits, ``_.-``
    become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "arm"
