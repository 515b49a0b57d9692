"""The config of ``tumorsynth train-adversarial`` (FreeTumor-class generator)::

    name: adversarial_liver
    segmentor: runs/segmentor_real/model     # a `tumorsynth train` checkpoint: the frozen judge
    data:
      organ: liver
      healthy: [data/healthy_ct, more.csv]   # unlabeled: CT + organ masks; folders or lists
      healthy_label_map: totalsegmentator
      real: [{image: p17_ct.nii.gz, label: p17_label.nii.gz, label_map: lits}]
    model: {crop_size: 64, spacing_mm: [1.5, 1.5, 1.5], channels: [16, 32, 64, 128]}
    optim: {lr: 2.0e-4, batch_size: 2, max_steps: 4000, seg_weight: 1.0, adv_weight: 0.1}
    train: {out_dir: runs/adversarial_liver}

``tumorsynth config adversarial`` prints every setting with its default and description.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

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
from tumorsynth.models.adversarial import AdversarialConfig
from tumorsynth.organs import registered_organs
from tumorsynth.training.config import CaseEntry, case_input_problems, case_label_map_problems
from tumorsynth.training.generative_config import GenerativeRunConfig

__all__ = ["ADVERSARIAL_BOUNDS", "AdversarialTrainConfig"]


@dataclass(frozen=True)
class AdversarialDataConfig:
    """Unlabeled healthy scans to put tumors in, and annotated real tumors for the discriminator.

    Attributes
    ----------
    organ
        The organ whose tumors are learned (liver, pancreas, kidney, ...).
    healthy
        Unlabeled CTs with organ masks only: dataset folders, case lists (.txt/.csv/.tsv of IMAGE LABEL lines), {path: DIR or LIST, label_map: ..} or {image: CT, label: SEG, label_map: ..}.
    healthy_label_map
        Label map of the healthy labels (no default; entries may name their own).
    real
        Scans with annotated real tumors of the organ, entries as for healthy.
    real_label_map
        Label map of the real labels (no default; entries may name their own).
    tumor_size
        Size class of the training tumors' shapes: tiny, small, medium, large or mixed.
    min_voxels
        Real tumors smaller than this many voxels are skipped.
    jitter
        The real crops' centre moves by up to this fraction of the crop from the tumor centre.
    val_crops
        Fixed healthy crops scored every val_every steps and shown in samples.png.
    """

    organ: str = "liver"
    healthy: tuple[CaseEntry, ...] = ()
    healthy_label_map: LabelMapSpec | None = None
    real: tuple[CaseEntry, ...] = ()
    real_label_map: LabelMapSpec | None = None
    tumor_size: SizeClass | Literal["mixed"] = "mixed"
    min_voxels: int = 8
    jitter: float = 0.125
    val_crops: int = 4

    def check(self) -> list[str]:
        problems = bound_problems(self, section_bounds(ADVERSARIAL_BOUNDS, "data"))
        if self.organ not in registered_organs():
            problems.append(
                f"organ: expected one of {list(registered_organs())}, found {self.organ!r}"
            )
        for key, what in (("healthy", "unlabeled healthy scans"), ("real", "annotated tumors")):
            entries = getattr(self, key)
            if not entries:
                problems.append(f"{key}: expected {what}, found none")
            else:
                problems += case_label_map_problems(
                    entries, getattr(self, f"{key}_label_map"), key, f"{key}_label_map"
                )
        return problems

    def input_problems(self) -> list[str]:
        return case_input_problems(self.healthy, "healthy") + case_input_problems(self.real, "real")


@dataclass(frozen=True)
class AdversarialOptimConfig:
    """Adam for the generator and the discriminator, counted in steps.

    Attributes
    ----------
    lr
        Learning rate of the generator.
    disc_lr
        Learning rate of the discriminator.
    batch_size
        Healthy crops (and real crops) per step.
    max_steps
        Optimizer steps in all (may grow on --resume).
    warmup_steps
        Steps of linear warm-up, then cosine decay.
    amp
        bfloat16 mixed precision on GPUs that support it.
    grad_clip
        Gradient norm clipping threshold.
    seg_weight
        Weight of the segmentation term: the frozen segmentor's loss on the synthetic tumor.
    adv_weight
        Weight of the adversarial term (FreeTumor: 0.1 x the segmentation term).
    """

    lr: float = 2e-4
    disc_lr: float = 2e-4
    batch_size: int = 2
    max_steps: int = 2000
    warmup_steps: int = 50
    amp: bool = True
    grad_clip: float = 1.0
    seg_weight: float = 1.0
    adv_weight: float = 0.1

    def check(self) -> list[str]:
        return bound_problems(self, section_bounds(ADVERSARIAL_BOUNDS, "optim"))


ADVERSARIAL_BOUNDS: dict[str, Interval] = {
    "seed": AT_LEAST_0,
    "data.min_voxels": AT_LEAST_1,
    "data.jitter": FRACTION,
    "data.val_crops": AT_LEAST_1,
    "optim.lr": POSITIVE,
    "optim.disc_lr": POSITIVE,
    "optim.batch_size": AT_LEAST_1,
    "optim.max_steps": AT_LEAST_1,
    "optim.warmup_steps": AT_LEAST_0,
    "optim.grad_clip": POSITIVE,
    "optim.seg_weight": AT_LEAST_0,
    "optim.adv_weight": AT_LEAST_0,
    "train.log_every": AT_LEAST_1,
    "train.val_every": AT_LEAST_1,
    "train.max_minutes": POSITIVE,
    "model.crop_size": AT_LEAST_1,
    "model.channels": AT_LEAST_1,
}


@dataclass(frozen=True)
class AdversarialTrainConfig:
    """The adversarial generator's training run (``tumorsynth train-adversarial --config FILE``).

    Attributes
    ----------
    name
        Name of the run.
    seed
        Seed of the initialization, the crops, the shapes and the noise.
    segmentor
        The frozen judge: a segmentor folder written by tumorsynth train (its out_dir/model), of the same organ and spacing.
    data
        The unlabeled healthy scans and the annotated real tumors.
    model
        The generator network and the crops it works on.
    optim
        The optimizers, their schedule and the loss weights.
    train
        Where the run goes.
    """

    name: str = "adversarial"
    seed: int = 0
    segmentor: str = ""
    data: AdversarialDataConfig = field(default_factory=AdversarialDataConfig)
    model: AdversarialConfig = field(default_factory=AdversarialConfig)
    optim: AdversarialOptimConfig = field(default_factory=AdversarialOptimConfig)
    train: GenerativeRunConfig = field(default_factory=GenerativeRunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "<config>") -> AdversarialTrainConfig:
        return config_from_dict(cls, data, where)

    def check(self) -> list[str]:
        problems = bound_problems(self, run_bounds(ADVERSARIAL_BOUNDS))
        if not self.segmentor:
            problems.append(
                "segmentor: expected the model folder of `tumorsynth train` (the frozen judge), "
                "found nothing"
            )
        try:
            self.model.validate("model")
        except InputError as exc:
            problems.append(f"{exc.where}: {exc.message}")
        return problems

    def input_problems(self) -> list[str]:
        if not self.segmentor or Path(self.segmentor).is_dir():
            return []
        return [
            f"segmentor: {self.segmentor}: folder not found (a `tumorsynth train` model folder)"
        ]
