"""The data-scaling study (AbdomenAtlas 2.0 style): how a segmentor improves with the number of
annotated real scans, with and without synthetic tumors, each arm trained and evaluated on the
same fixed test sets through :func:`~tumorsynth.pipelines.experiment.run_arm`.

Example (``tumorsynth scaling --config study.yaml``)::

    name: liver scaling
    out_dir: runs/scaling
    base: unet_liver.yaml            # a training config: data.real is the pool of annotated
                                     # scans, data.healthy the healthy scans synthesis uses
    real_counts: [0, 1, 2, 5, 10]    # annotated scans per arm, drawn from data.real
    seeds: [0, 1, 2]
    synthetic:                       # one curve each
      - {name: real only}
      - {name: heuristic, generator: heuristic, share: 0.5}
      - {name: diffusion, generator: diffusion, options: {checkpoint: runs/diff/model},
         vary: {data.generator_options.steps: [4, 10, 50]}}
      - {name: DiffTumor outputs, folder: ext/difftumor, label_map: lits}
    test:
      - {name: LiTS, images: data/lits/imagesTs, labels: data/lits/labelsTs, label_map: lits}

The grid is real counts x synthetic settings x seeds. For a seed, the real scans come in one
seeded order and an arm with ``n`` of them takes the first ``n`` (so the subsets are nested, and
the curve's steps are the added scans, not a new draw). A synthetic setting is one of:

- nothing (``{name: ..}``): the real scans only (``data.mode: real``); at 0 real scans there is
  nothing to train and the arm is left out;
- a generator (``generator``, ``options``, ``share``): the healthy scans of ``data.healthy`` with
  tumors synthesized online, alone at 0 real scans (``synthetic``), else mixed with the real
  scans, ``share`` of the crops synthetic (``mixed``);
- an external generator's outputs (``folder``, ``label_map``): a dataset folder or case list of
  image/label pairs made by another tool (DiffTumor, FreeTumor, MAISI), trained on as annotated
  scans beside the real ones, so several generators meet under one trainer and one evaluation.

``vary`` turns a setting into one curve per value of a training setting: DDIM sampling steps,
checkpoints trained on 1, 2 or 5 tumors (``{1 tumor: runs/d1/model, 2 tumors: ..}``, a mapping
names the curves), a generator trained on another organ than the segmentor's (DiffTumor's
cross-organ table) and so on. ``set`` changes any other training setting of the setting's arms.

Arms keep no validation split (``data.val_fraction: 0``): with one or two real scans a split
would take the only ones; the last checkpoint is evaluated. Each arm lives in
``out_dir/arms/SETTING/realN_seedS`` with the settings it was made with (``arm.json``); a study
run again skips what is done and refuses an arm folder made with other settings. The results are
``scaling.csv`` (every arm and test set), ``scaling.md`` (mean and spread over seeds) and one
figure per test set (:mod:`.scaling_report`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tumorsynth._settings import (
    config_from_dict,
    dotted_settings,
    merge_settings,
    parse_overrides,
    read_settings,
)
from tumorsynth._types import LabelMapSpec
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path, ensure_writable_dir
from tumorsynth.pipelines.batch_folder import settings_differences
from tumorsynth.pipelines.experiment import (
    METRICS,
    EvaluateSettings,
    TestSet,
    run_arm,
    slug,
    test_set_problems,
)
from tumorsynth.pipelines.scaling_report import write_results
from tumorsynth.training.config import TrainConfig, label_map_problems
from tumorsynth.training.data import case_items

__all__ = [
    "ScalingArm",
    "ScalingConfig",
    "ScalingSettings",
    "SyntheticSetting",
    "load_scaling",
    "run_scaling",
]


@dataclass(frozen=True)
class SyntheticSetting:
    """One curve of the study: what is added to the real scans.

    Attributes
    ----------
    name
        The curve's name (legend, table rows, the arms' folder).
    generator
        A registered generator (heuristic, diffusion, adversarial) that puts tumors into the
        healthy scans of the base's data.healthy online; null: none.
    options
        The generator's options, e.g. {checkpoint: RUN/model, steps: 10}.
    share
        Share of synthetic crops when real scans are used too (data.synthetic_fraction), in
        (0, 1); null: 0.5 for a generator.
    folder
        An external generator's outputs: a dataset folder or case list of CT/label pairs with
        tumors, trained on as annotated scans beside the real ones; null: none.
    label_map
        Label map of the folder's labels (required with folder).
    set
        Further training settings of this curve's arms, dotted: {optim.max_steps: 500}.
    vary
        One curve per value of a training setting, dotted: {data.generator_options.steps:
        [4, 10, 50]}; a mapping of values names the curves ({1 tumor: runs/d1/model}).
    """

    name: str
    generator: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    share: float | None = None
    folder: str | None = None
    label_map: LabelMapSpec | None = None
    set: dict[str, Any] = field(default_factory=dict)
    vary: dict[str, Any] = field(default_factory=dict)

    def check(self) -> list[str]:
        problems = []
        if self.generator and self.folder:
            problems.append("expected a generator or a folder, found both")
        if self.share is not None:
            if not self.generator:
                problems.append(
                    "share: only a generator's crops have a share (a folder's cases "
                    "are trained on as they are)"
                )
            elif not 0.0 < self.share < 1.0:
                problems.append(f"share: expected a number in (0, 1), found {self.share}")
        if self.options and not self.generator:
            problems.append("options: only a generator takes options")
        if self.folder is not None:
            problems += label_map_problems(self.label_map, "label_map")
            if not Path(self.folder).exists():
                problems.append(f"folder: {self.folder}: not found")
        for key, values in self.vary.items():
            if not isinstance(values, Sequence | Mapping) or isinstance(values, str) or not values:
                problems.append(
                    f"vary.{key}: expected a list or mapping of values, found {values!r}"
                )
        return problems

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """``(curve name, dotted training settings)`` of each curve this setting gives."""
        curves: list[tuple[str, dict[str, Any]]] = [(self.name, dict(self.set))]
        for key, values in self.vary.items():
            named = (
                values.items()
                if isinstance(values, Mapping)
                else ((f"{key.rsplit('.', 1)[-1]}={value}", value) for value in values)
            )
            curves = [
                (f"{name}, {label}", {**settings, key: value})
                for name, settings in curves
                for label, value in named
            ]
        return curves


@dataclass(frozen=True)
class ScalingSettings:
    """A scaling study as written (``tumorsynth scaling --config FILE``).

    Attributes
    ----------
    name
        Title of the table and the figures.
    out_dir
        Folder of the study (arms/, scaling.csv, scaling.md, scaling_*.png).
    base
        The training config every arm starts from: a YAML file (relative to this file) or a
        mapping; its data.real is the pool of annotated scans, data.healthy the healthy scans.
    real_counts
        Numbers of annotated real scans, the x axis (each at most the size of the pool).
    seeds
        Seeds: of the real scans' order, the training and the synthetic tumors.
    synthetic
        The curves: {name} (real scans only), {name, generator, options, share} or {name,
        folder, label_map}, each with optional set and vary.
    test
        Fixed test sets, each {name, images, labels, label_map, organ}.
    evaluate
        How predictions are scored.
    """

    name: str = "scaling"
    out_dir: str = "runs/scaling"
    base: str | dict[str, Any] = field(default_factory=dict)
    real_counts: tuple[int, ...] = (0, 1, 2, 5)
    seeds: tuple[int, ...] = (0,)
    synthetic: tuple[SyntheticSetting, ...] = (SyntheticSetting("real only"),)
    test: tuple[TestSet, ...] = ()
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)

    def check(self) -> list[str]:
        problems = []
        if not self.real_counts:
            problems.append("real_counts: expected at least one number of real scans, found none")
        if len(set(self.real_counts)) != len(self.real_counts):
            problems.append(
                f"real_counts: expected distinct numbers, found {list(self.real_counts)}"
            )
        problems += [
            f"real_counts: expected numbers >= 0, found {n}" for n in self.real_counts if n < 0
        ]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds: expected distinct seeds, found {list(self.seeds)}")
        if not self.synthetic:
            problems.append("synthetic: expected at least one setting, found none")
        curves = [name for s in self.synthetic for name, _ in s.variants()]
        if len({slug(name) for name in curves}) != len(curves):
            problems.append(f"synthetic: curve names must be distinct, found {curves}")
        if not self.test:
            problems.append(
                "test: expected at least one test set {name, images, labels}, found none"
            )
        return problems


@dataclass(frozen=True)
class ScalingArm:
    """One cell of the grid: a curve, a number of real scans and a seed, as a training run."""

    curve: str
    real_count: int
    seed: int
    train: TrainConfig


@dataclass(frozen=True)
class ScalingConfig:
    name: str
    out_dir: Path
    arms: tuple[ScalingArm, ...]
    curves: tuple[str, ...]
    real_counts: tuple[int, ...]
    test: tuple[TestSet, ...]
    evaluate: dict[str, Any]


def load_scaling(
    path: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] = ()
) -> ScalingConfig:
    """Read a study YAML and build every arm's training config, checking everything (the pool
    is large enough, every arm's config, the test folders) before anything is trained."""
    path = Path(path)
    raw = read_settings(path)
    if isinstance(raw.get("base"), str):
        base_path = Path(raw["base"])
        raw = {
            **raw,
            "base": read_settings(
                base_path if base_path.is_absolute() else path.parent / base_path
            ),
        }
    settings = config_from_dict(
        ScalingSettings, merge_settings(raw, parse_overrides(overrides)), str(path), inputs=True
    )
    base = settings.base if isinstance(settings.base, dict) else {}
    problems = test_set_problems(settings.test)
    data = base.get("data", {})
    pool = _real_pool(data, str(path))
    if max(settings.real_counts) > len(pool):
        problems.append(
            f"real_counts: expected at most {len(pool)} (the annotated scans of base "
            f"data.real), found {max(settings.real_counts)}"
        )
    if any(s.generator for s in settings.synthetic) and not data.get("healthy"):
        problems.append("base data.healthy: a generator's arms need healthy scans, found none")
    arms: list[ScalingArm] = []
    if not problems:
        for setting in settings.synthetic:
            for curve, extra in setting.variants():
                for n in settings.real_counts:
                    if n == 0 and not (setting.generator or setting.folder):
                        continue  # nothing to train on
                    for seed in settings.seeds:
                        try:
                            arms.append(_arm(settings, base, pool, setting, curve, extra, n, seed))
                        except InputError as exc:
                            problems.append(f"{curve}, {n} real, seed {seed}: {exc.message}")
    if problems:
        raise InputError(str(path), "; ".join(dict.fromkeys(problems)))
    return ScalingConfig(
        settings.name,
        Path(settings.out_dir),
        tuple(arms),
        tuple(curve for s in settings.synthetic for curve, _ in s.variants()),
        tuple(sorted(settings.real_counts)),
        settings.test,
        dataclasses.asdict(settings.evaluate),
    )


def run_scaling(config: ScalingConfig, *, progress: bool = True) -> Path:
    """Train and evaluate every arm not done yet; write the table, the CSV and the figures."""
    out = ensure_writable_dir(config.out_dir)
    rows: list[dict[str, Any]] = []
    bar = tqdm(config.arms, desc=config.name, unit="arm", disable=not progress)
    for arm in bar:
        bar.set_postfix_str(f"{arm.curve}, {arm.real_count} real, seed {arm.seed}")
        _claim_arm_folder(arm)
        summaries = run_arm(arm.train, config.test, config.evaluate, progress=False)
        for test, summary in summaries.items():
            rows.append(
                {"curve": arm.curve, "real_count": arm.real_count, "seed": arm.seed, "test": test}
                | {key: summary.get(key) for key, _ in METRICS}
            )
    write_results(out, config.name, config.curves, config.real_counts, config.test, rows)
    return out


def _real_pool(data: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    """The annotated scans of the base's ``data.real``, one ``{image, label, label_map,
    case_id}`` entry each, in case id order."""
    entries = data.get("real", [])
    if not entries:
        return []
    try:
        items = case_items(entries, "real", data.get("real_label_map"))
    except InputError as exc:
        raise InputError(where, f"base data.real: {exc.where}: {exc.message}") from exc
    items.sort(key=lambda item: item.case_id)
    return [
        {
            "image": item.image,
            "label": item.label,
            "label_map": item.label_map,
            "case_id": item.case_id.split(":", 1)[1],
        }
        for item in items
    ]


def _arm(
    settings: ScalingSettings,
    base: Mapping[str, Any],
    pool: Sequence[Mapping[str, str]],
    setting: SyntheticSetting,
    curve: str,
    extra: Mapping[str, Any],
    n: int,
    seed: int,
) -> ScalingArm:
    order = np.random.default_rng(seed).permutation(len(pool))
    real = [dict(pool[i]) for i in order[:n]]
    changes: dict[str, Any] = {"seed": seed, "data.val_fraction": 0.0, "data.val_cases": []}
    if setting.generator:
        changes |= {
            "data.mode": "mixed" if n else "synthetic",
            "data.generator": setting.generator,
            "data.generator_options": dict(setting.options),
            "data.synthetic_fraction": 0.5 if setting.share is None else setting.share,
        }
    else:
        changes["data.mode"] = "real"
        if setting.folder:
            real.append({"path": str(setting.folder), "label_map": setting.label_map})
    changes["data.real"] = real
    name = f"{curve}, {n} real, seed {seed}"
    out = Path(settings.out_dir) / "arms" / slug(curve) / f"real{n}_seed{seed}"
    merged = merge_settings(base, dotted_settings({**changes, **extra}))
    merged = merge_settings(merged, {"name": name, "train": {"out_dir": str(out)}})
    train = config_from_dict(TrainConfig, merged, name, inputs=True)
    return ScalingArm(curve, n, seed, train)


def _claim_arm_folder(arm: ScalingArm) -> None:
    """Write the arm's settings beside its run, or refuse a folder made with other ones."""
    folder = Path(arm.train.train.out_dir)
    wanted = json.loads(json.dumps(dataclasses.asdict(arm.train)))
    record = folder / "arm.json"
    if record.exists():
        differences = settings_differences(
            json.loads(record.read_text(encoding="utf-8")), wanted, kept_in="arm.json"
        )
        if differences:
            raise InputError(
                str(record),
                "this arm was made with other settings: " + "; ".join(differences[:5]),
                fix="use another out_dir, or remove the arm's folder to train it again",
            )
        return
    ensure_writable_dir(folder)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(wanted, indent=1), encoding="utf-8")
