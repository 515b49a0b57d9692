"""Training configuration: one YAML file a user can read and diff, frozen once loaded.

Example (``tumorsynth train --config unet_synthetic_liver.yaml``)::

    name: unet_synthetic_liver
    seed: 0
    data:
      mode: synthetic            # real | synthetic | mixed
      organ: liver
      healthy: [data/Dataset001_Healthy]     # healthy CT + organ labels (tumors synthesized);
      healthy_label_map: totalsegmentator    # an entry may be {path: DIR, label_map: PRESET}
                                             # or one case: {image: CT, label: SEG, label_map: ..}
      real: []                   # CT with real tumors (nnU-Net v2 / MSD / AbdomenAtlas folders)
      real_label_map: lits
      synthetic_fraction: 0.5    # mixed: share of crops from healthy scans with synthetic tumors
      generator: heuristic       # or diffusion, with generator_options: {checkpoint: DIR}
      tumor_size: mixed
      val_fraction: 0.2
      spacing_mm: [1.5, 1.5, 1.5]   # null: the median spacing of the training scans
      hu_window: [-175, 250]
    model: {backbone: unet}
    optim: {lr: 3.0e-4, weight_decay: 1.0e-5, warmup_steps: 100, max_steps: 2000, batch_size: 2}
    train: {out_dir: runs/unet_synthetic_liver, val_every: 250}

Unknown keys are errors that name the key and the keys that exist; every value is checked against
its type (``max_steps: ten``, ``patch_size: 32`` or ``batch_size: true`` are refused, naming the
setting) and its range (:data:`BOUNDS`) before anything is read or written.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tumorsynth._settings import Interval, check_bounds, config_from_dict
from tumorsynth._types import SizeClass
from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import resolve_label_map
from tumorsynth.models.segmentors import SegmentorConfig

__all__ = [
    "BOUNDS",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "load_train_config",
    "merge_settings",
]

Mode = Literal["real", "synthetic", "mixed"]


@dataclass(frozen=True)
class DataConfig:
    """Where training data comes from and how it is prepared."""

    mode: Mode = "synthetic"
    organ: str = "liver"
    healthy: tuple[str | dict[str, str], ...] = ()
    healthy_label_map: str = "totalsegmentator"
    real: tuple[str | dict[str, str], ...] = ()
    real_label_map: str = "lits"
    synthetic_fraction: float = 0.5
    generator: str = "heuristic"
    generator_options: dict[str, Any] = field(default_factory=dict)
    tumor_size: SizeClass | Literal["mixed"] = "mixed"
    tumors_per_case: int | None = None
    synthesis_prob: float = 1.0
    val_fraction: float = 0.2
    val_cases: tuple[str, ...] = ()
    spacing_mm: tuple[float, float, float] | None = (1.5, 1.5, 1.5)
    hu_window: tuple[float, float] = (-175.0, 250.0)
    samples_per_case: int = 2
    positive_fraction: float = 0.67
    num_workers: int = 4
    cache: bool = True


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, counted in optimizer steps."""

    lr: float = 3e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    max_steps: int = 2000
    batch_size: int = 2
    amp: bool = True
    grad_clip: float = 12.0


@dataclass(frozen=True)
class RunConfig:
    """Where results go and how often to validate and save; ``max_minutes`` stops training
    early (after saving) when the wall-clock budget is spent."""

    out_dir: str = "runs/default"
    val_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 10
    device: str = "auto"
    sw_overlap: float = 0.25
    max_val_cases: int = 8
    max_minutes: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    name: str = "default"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: SegmentorConfig = field(default_factory=SegmentorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def classes(self) -> dict[str, int]:
        """Network output classes: 0 background, 1 organ, 2 tumor (of ``data.organ``)."""
        return {"background": 0, self.data.organ: 1, f"{self.data.organ}_tumor": 2}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "<config>") -> TrainConfig:
        config = config_from_dict(cls, data, where)
        _validate(config, where)
        return config


AT_LEAST_0 = Interval(0)
AT_LEAST_1 = Interval(1)
POSITIVE = Interval(0, low_open=True)
FRACTION = Interval(0, 1)

#: Allowed ranges of the numeric settings (cross-setting rules are in ``_validate``).
BOUNDS: dict[str, Interval] = {
    "seed": AT_LEAST_0,
    "data.synthetic_fraction": FRACTION,
    "data.tumors_per_case": AT_LEAST_1,
    "data.synthesis_prob": FRACTION,
    "data.val_fraction": Interval(0, 1, high_open=True),
    "data.spacing_mm": POSITIVE,
    "data.samples_per_case": AT_LEAST_1,
    "data.positive_fraction": FRACTION,
    "data.num_workers": AT_LEAST_0,
    "model.in_channels": AT_LEAST_1,
    "model.patch_size": AT_LEAST_1,
    "model.spacing_mm": POSITIVE,
    "model.channels": AT_LEAST_1,
    "model.feature_size": AT_LEAST_1,
    "model.dropout": Interval(0, 1, high_open=True),
    "optim.lr": POSITIVE,
    "optim.weight_decay": AT_LEAST_0,
    "optim.warmup_steps": AT_LEAST_0,
    "optim.max_steps": AT_LEAST_1,
    "optim.batch_size": AT_LEAST_1,
    "optim.grad_clip": POSITIVE,
    "train.val_every": AT_LEAST_1,
    "train.checkpoint_every": AT_LEAST_1,
    "train.log_every": AT_LEAST_1,
    "train.sw_overlap": Interval(0, 1, high_open=True),
    "train.max_val_cases": AT_LEAST_0,
    "train.max_minutes": POSITIVE,
}


def load_train_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Read a YAML/JSON training config; ``overrides`` (nested dict) win over the file."""
    raw = read_settings(path)
    merged = merge_settings(raw, overrides or {})
    return TrainConfig.from_dict(merged, str(path))


def read_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (or JSON) file that must hold a mapping; errors name the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise InputError(str(path), f"cannot read config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise InputError(str(path), f"expected YAML, found unparsable text ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(str(path), f"expected a mapping of settings, found {type(raw).__name__}")
    return raw


def dotted_settings(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.max_steps": 5}`` -> ``{"optim": {"max_steps": 5}}``."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        parts = str(dotted).split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def merge_settings(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


def _validate(config: TrainConfig, where: str) -> None:
    check_bounds(config, BOUNDS, where)
    d = config.data
    if d.mode in ("synthetic", "mixed") and not d.healthy:
        raise InputError(where, f"data.mode {d.mode!r} needs healthy scans (data.healthy)")
    if d.mode in ("real", "mixed") and not d.real:
        raise InputError(where, f"data.mode {d.mode!r} needs scans with real tumors (data.real)")
    if not 0.0 < d.synthetic_fraction < 1.0 and d.mode == "mixed":
        raise InputError(
            where, f"data.synthetic_fraction must be in (0, 1), found {d.synthetic_fraction}"
        )
    for key, used in (("healthy_label_map", d.healthy), ("real_label_map", d.real)):
        if used:
            try:
                resolve_label_map(getattr(d, key))
            except InputError as exc:
                raise InputError(where, f"data.{key}: {exc.message}") from exc
    lo, hi = d.hu_window
    if not hi > lo:
        raise InputError(
            where, f"data.hu_window: expected (low, high) HU, found {list(d.hu_window)}"
        )
    if not config.train.out_dir:
        raise InputError(where, "train.out_dir: expected a folder for the run, found nothing")
    if config.model.out_channels != len(config.classes):
        raise InputError(
            where,
            f"model.out_channels must be {len(config.classes)} "
            f"(background, organ, tumor), found {config.model.out_channels}",
        )
