"""Training configuration: one YAML file a user can read and diff, frozen once loaded.

Example (``tumorsynth train --config unet_synthetic_liver.yaml``)::

    name: unet_synthetic_liver
    seed: 0
    data:
      mode: synthetic            # real | synthetic | mixed
      organ: liver               # or several: [liver, colon, uterus] (one network, 7 classes)
      healthy: [data/Dataset001_Healthy]     # healthy CT + organ labels (tumors synthesized);
      healthy_label_map: totalsegmentator    # a preset, a JSON file or {liver: 1, kidney: [2, 3]};
                                             # an entry may be {path: DIR, label_map: ..}
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

Load it with ``_settings.load_config(TrainConfig, path, overrides)``. Unknown keys are errors that
name the key and the keys that exist; every value is checked against its type (``max_steps: ten``,
``patch_size: 32`` or ``batch_size: true`` are refused, naming the setting), its range
(:data:`BOUNDS`) and the rules of :meth:`TrainConfig.check` (label maps resolve, the data a mode
needs are given, the generator exists), all together, before anything is read or written.
``tumorsynth config train`` prints every setting with its default and a one-line description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tumorsynth import DEFAULT_GENERATOR
from tumorsynth._settings import (
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    POSITIVE,
    Interval,
    bound_problems,
    config_from_dict,
    run_bounds,
    section_bounds,
)
from tumorsynth._types import LabelMapSpec, SizeClass
from tumorsynth.errors import InputError
from tumorsynth.generators import generator_takes, registered_generators
from tumorsynth.io.datasets import is_case_list
from tumorsynth.io.label_maps import OUTPUT_LABELS, resolve_label_map
from tumorsynth.models.segmentors import SegmentorConfig
from tumorsynth.organs import registered_organs

__all__ = [
    "BOUNDS",
    "NO_DEFAULT_MAP",
    "CaseEntry",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "case_input_problems",
    "case_label_map_problems",
    "label_map_problems",
]

Mode = Literal["real", "synthetic", "mixed"]

#: A training case entry: a dataset folder, ``{path: DIR, label_map: ..}`` or one case
#: ``{image: CT, label: SEG, label_map: .., case_id: ..}``.
CaseEntry = str | dict[str, str | dict[str, int | list[int]]]


@dataclass(frozen=True)
class DataConfig:
    """Where training data comes from and how it is prepared.

    Attributes
    ----------
    mode
        real (scans with real tumors), synthetic (healthy scans + synthetic tumors) or mixed.
    organ
        The organ whose tumors are segmented (liver, pancreas, kidney, colon, esophagus, uterus), or several ([liver, colon, uterus]): the classes are background, then each organ and its tumor in output-label order (13 for all six); synthetic tumors go into one organ per crop.
    healthy
        Healthy CTs with organ labels: dataset folders, case lists (.txt/.csv/.tsv of IMAGE LABEL lines), {path: DIR or LIST, label_map: ..} or one case {image: CT, label: SEG, label_map: ..}.
    healthy_label_map
        Label map of the healthy labels (no default; entries may name their own): a preset, a JSON file or an inline {organ: id or [ids]}.
    real
        CTs with real tumors, entries as for healthy (nnU-Net v2, MSD or AbdomenAtlas folders, case lists).
    real_label_map
        Label map of the real labels (no default; entries may name their own): a preset, a JSON file or an inline {organ: id or [ids]}.
    synthetic_fraction
        mixed: share of crops from healthy scans with synthetic tumors, in (0, 1).
    generator
        Tumor appearance generator: heuristic, or diffusion (a trained checkpoint).
    generator_options
        Options of the generator, e.g. {checkpoint: DIR} for diffusion.
    filter
        Quality filter of synthetic tumors, online (FreeTumor): {checkpoints: [DIR], threshold: 0.7, retries: 3, on_fail: keep}; null: none.
    tumor_size
        Size class of synthetic tumors: tiny, small, medium, large or mixed.
    tumors_per_case
        Synthetic tumors per crop source (null: drawn from the size class's range).
    synthesis_prob
        Probability that a healthy sample gets synthetic tumors.
    val_fraction
        Share of cases held out for validation, in [0, 1).
    val_cases
        Case ids to validate on instead (overrides val_fraction).
    spacing_mm
        Voxel size training resamples to, in mm (null: the median spacing of the training scans).
    hu_window
        HU range (low, high) mapped to [0, 1]; values outside are clipped.
    samples_per_case
        Crops drawn per loaded case.
    positive_fraction
        Share of crops centred on organ or tumor voxels.
    num_workers
        Data loader worker processes (0: load in the main process).
    cache
        Keep preprocessed scans in memory.
    analysis_cache_dir
        Folder where each healthy scan's organ analysis is kept for other loader workers, torchrun ranks and later runs (null: in each worker's memory only).
    """

    mode: Mode = "synthetic"
    organ: str | tuple[str, ...] = "liver"
    healthy: tuple[CaseEntry, ...] = ()
    healthy_label_map: LabelMapSpec | None = None
    real: tuple[CaseEntry, ...] = ()
    real_label_map: LabelMapSpec | None = None
    synthetic_fraction: float = 0.5
    generator: str = DEFAULT_GENERATOR
    generator_options: dict[str, Any] = field(default_factory=dict)
    filter: dict[str, Any] | None = None
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
    analysis_cache_dir: str | None = None

    @property
    def organs(self) -> tuple[str, ...]:
        """The organs of ``organ``, in the output convention's order (its label ids)."""
        known = {name: ids[0] for name, ids in OUTPUT_LABELS.organs.items()}
        return tuple(sorted(dict.fromkeys(self._names()), key=lambda n: (known.get(n, 1000), n)))

    def _names(self) -> tuple[str, ...]:
        """``organ`` as given: one name, or several (repeats kept, for :meth:`check`)."""
        return (self.organ,) if isinstance(self.organ, str) else tuple(self.organ)

    def check(self) -> list[str]:
        """Rules between settings, and every label map in use resolved (named by key path)."""
        problems = bound_problems(self, section_bounds(BOUNDS, "data"))
        names = self._names()
        unknown = [n for n in names if n not in registered_organs()]
        if unknown:
            problems.append(
                f"organ: {', '.join(f'organ {n!r}' for n in unknown)}: no organ profile; known "
                f"organs are {list(registered_organs())}"
            )
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice or not names:
            problems.append(
                f"organ: expected one or more different organs, found {list(names)}"
                + (f" ({', '.join(twice)} more than once)" if twice else "")
            )
        if self.mode in ("synthetic", "mixed") and not self.healthy:
            problems.append(f"mode: {self.mode!r} needs healthy scans (data.healthy)")
        if self.mode in ("real", "mixed") and not self.real:
            problems.append(f"mode: {self.mode!r} needs scans with real tumors (data.real)")
        if self.mode == "mixed" and self.synthetic_fraction in (0.0, 1.0):
            problems.append(
                f"synthetic_fraction: must be in (0, 1) for mode 'mixed', "
                f"found {self.synthetic_fraction}"
            )
        if self.generator not in registered_generators():
            problems.append(
                f"generator: generator {self.generator!r}: unknown generator; known are "
                f"{list(registered_generators())}"
            )
        else:
            unknown = [o for o in self.generator_options if not generator_takes(self.generator, o)]
            if unknown:
                problems.append(
                    f"generator_options: expected options of generator {self.generator!r}, "
                    f"found {self.generator_options} (it takes no option {', '.join(unknown)})"
                )
        if self.filter is not None:
            problems += filter_problems(self.filter)
        for key in ("healthy", "real"):
            entries = getattr(self, key)
            if entries:
                problems += case_label_map_problems(
                    entries, getattr(self, f"{key}_label_map"), key, f"{key}_label_map"
                )
        lo, hi = self.hu_window
        if not hi > lo:
            problems.append(f"hu_window: expected (low, high) HU, found {list(self.hu_window)}")
        return problems

    def input_problems(self) -> list[str]:
        """The scans ``mode`` uses that are not where the entries say."""
        used = {"synthetic": ("healthy",), "real": ("real",), "mixed": ("healthy", "real")}
        problems = [
            p for key in used[self.mode] for p in case_input_problems(getattr(self, key), key)
        ]
        if self.filter is not None and self.mode != "real":
            checkpoints = self.filter.get("checkpoints", ())
            for folder in [checkpoints] if isinstance(checkpoints, str) else checkpoints:
                if not Path(str(folder)).is_dir():
                    problems.append(
                        f"filter.checkpoints: expected a segmentor folder, found nothing at "
                        f"{folder}"
                    )
        return problems


def filter_problems(settings: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``data.filter`` mapping (its keys and values), by key path."""
    from tumorsynth.pipelines.filter_settings import FilterSettings

    try:
        FilterSettings.from_mapping(settings)
    except InputError as exc:
        return [str(exc) if exc.where == "filter" else f"filter: {exc}"]
    return []


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, counted in optimizer steps.

    Attributes
    ----------
    lr
        Peak learning rate (after warm-up).
    weight_decay
        AdamW weight decay.
    warmup_steps
        Steps of linear warm-up from 0 to lr.
    max_steps
        Optimizer steps in all (may grow on --resume).
    batch_size
        Crops per step (per process under torchrun).
    amp
        bfloat16 mixed precision on GPUs that support it.
    grad_clip
        Gradient norm clipping threshold.
    """

    lr: float = 3e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 100
    max_steps: int = 2000
    batch_size: int = 2
    amp: bool = True
    grad_clip: float = 12.0

    def check(self) -> list[str]:
        return bound_problems(self, section_bounds(BOUNDS, "optim"))


@dataclass(frozen=True)
class RunConfig:
    """Where results go and how often to validate and save.

    Attributes
    ----------
    out_dir
        Folder of the run (checkpoints, metrics.csv, summary.json); must not hold another run.
    val_every
        Validate every this many steps.
    checkpoint_every
        Save checkpoints/last every this many steps.
    log_every
        Write a metrics.csv row every this many steps.
    device
        auto (GPU if there is one), cpu, cuda or cuda:N.
    sw_overlap
        Overlap of the sliding windows in validation, in [0, 1).
    max_val_cases
        Validation cases scored at most (0: all).
    max_minutes
        Stop (after saving) when this wall-clock budget is spent (null: no limit).
    """

    out_dir: str = "runs/default"
    val_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 10
    device: str = "auto"
    sw_overlap: float = 0.25
    max_val_cases: int = 8
    max_minutes: float | None = None

    def check(self) -> list[str]:
        problems = bound_problems(self, section_bounds(BOUNDS, "train"))
        if not self.out_dir:
            problems.append("out_dir: expected a folder for the run, found nothing")
        return problems


@dataclass(frozen=True)
class TrainConfig:
    """A segmentor training run (``tumorsynth train --config FILE``).

    Attributes
    ----------
    name
        Name of the run (progress bar, experiment tables).
    seed
        Seed of the network's initialization, the data split, the crops and the tumors.
    data
        Training data and their preparation.
    model
        The segmentation network.
    optim
        The optimizer and its schedule.
    train
        Where the run goes, validation and checkpoints.
    """

    name: str = "default"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: SegmentorConfig = field(default_factory=SegmentorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __post_init__(self) -> None:
        # The network's classes follow data.organ: out_channels left at its default (3, one
        # organ) takes the class count of several organs.
        default = SegmentorConfig.out_channels
        if self.model.out_channels == default and len(self.classes) != default:
            object.__setattr__(self, "model", replace(self.model, out_channels=len(self.classes)))

    @property
    def classes(self) -> dict[str, int]:
        """Network output classes: 0 background, then per organ of ``data.organ`` (output
        convention order) the organ and its tumor: 1 organ, 2 tumor for one organ; 0-12 as in
        the output convention for all six.

        Examples
        --------
        >>> TrainConfig(data=DataConfig(organ=("uterus", "liver"))).classes
        {'background': 0, 'liver': 1, 'liver_tumor': 2, 'uterus': 3, 'uterus_tumor': 4}
        """
        classes = {"background": 0}
        for organ in self.data.organs:
            classes[organ] = len(classes)
            classes[f"{organ}_tumor"] = len(classes)
        return classes

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "<config>") -> TrainConfig:
        return config_from_dict(cls, data, where)

    def check(self) -> list[str]:
        """The ranges (:data:`BOUNDS`) of ``seed`` and of the network, and the rules between
        sections (each section checks its own settings first)."""
        problems = bound_problems(self, run_bounds(BOUNDS))
        if self.model.out_channels != len(self.classes):
            problems.append(
                f"model.out_channels: must be {len(self.classes)} (background, and each organ "
                f"of data.organ and its tumor), found {self.model.out_channels}"
            )
        return problems


#: Allowed ranges of the numeric settings, checked by the ``check`` method of their section (the
#: network's by :meth:`TrainConfig.check`); the other rules are in those methods too.
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


#: Why a label map has no default: the same id is a different organ in each convention.
NO_DEFAULT_MAP = (
    "required: a preset (totalsegmentator, msd, lits, kits, abdomenatlas, tumorsynth), a JSON "
    "file or an inline {organ: id or [ids]}; there is no default, since id 1 is the liver in "
    "LiTS and the spleen in TotalSegmentator, and id 5 the liver in TotalSegmentator and the "
    "kidney in tumorsynth's own"
)


def label_map_problems(spec: LabelMapSpec | None, key: str) -> list[str]:
    """``[]`` when ``spec`` resolves to a label map, else its problem named ``key`` (None: the
    map was not given)."""
    if spec is None:
        return [f"{key}: {NO_DEFAULT_MAP}"]
    try:
        resolve_label_map(spec)
    except InputError as exc:  # a file's error names the file; a preset's or mapping's not
        named = not exc.where.startswith(("--label-map", "<"))
        detail = f"{exc.where}: {exc.message}" if named else exc.message
        return [f"{key}: {detail}" + (f" ({exc.fix})" if exc.fix else "")]
    return []


def case_input_problems(entries: tuple[CaseEntry, ...], key: str) -> list[str]:
    """Case entries whose folder or files do not exist, as ``healthy[0]: DIR: training dataset
    folder not found`` (entries of an unknown form are left to the data loader, which names
    their keys)."""
    problems = []
    for index, entry in enumerate(entries):
        fields = {"": entry} if isinstance(entry, str) else entry
        for name, kind in (
            ("", "dataset folder"),
            ("path", "dataset folder"),
            ("image", "image"),
            ("label", "label"),
        ):
            path = fields.get(name)
            if isinstance(path, str) and not Path(path).exists():
                where = f"{key}[{index}]" + (f".{name}" if name else "")
                kind = "case list" if kind == "dataset folder" and is_case_list(path) else kind
                problems.append(f"{where}: {path}: training {kind} not found")
    return problems


def case_label_map_problems(
    entries: tuple[CaseEntry, ...],
    default: LabelMapSpec | None,
    entries_key: str,
    default_key: str,
) -> list[str]:
    """The label maps case ``entries`` use, resolved: ``default`` (named ``default_key``) unless
    every entry names its own, and each entry's own (``healthy[0].label_map``)."""
    own = [
        (f"{entries_key}[{index}].label_map", entry["label_map"])
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and "label_map" in entry
    ]
    used = own if len(own) == len(entries) else [(default_key, default), *own]
    return [problem for key, spec in used for problem in label_map_problems(spec, key)]
