"""Configs for training the learned tumor generator: the VQ autoencoder, then the latent denoiser.

``tumorsynth train-autoencoder --config ae.yaml``::

    name: ae_abdomen
    seed: 0
    data:
      images: [data/healthy_ct, data/Dataset003_Liver]   # folders (any NIfTI) or files
      val_fraction: 0.2          # whole scans held out for PSNR/SSIM
    model: {channels: [32, 64], num_embeddings: 2048, embedding_dim: 8, crop_size: 96,
            spacing_mm: [1.0, 1.0, 1.0], hu_window: [-175, 250]}
    optim: {lr: 1.0e-4, batch_size: 2, max_steps: 20000, adv_weight: 0.01, adv_start: 2000}
    train: {out_dir: runs/ae_abdomen}

``tumorsynth train-diffusion --config diffusion.yaml``::

    name: diffusion_liver
    autoencoder: runs/ae_abdomen/autoencoder
    data:
      cases: [{image: p17_ct.nii.gz, label: p17_label.nii.gz, label_map: msd}]
      organs: [liver]            # tumors of these organs (empty: every tumor in the map)
    model: {channels: [32, 64, 128], num_train_timesteps: 200, sample_steps: [4, 50]}
    optim: {lr: 1.0e-4, batch_size: 4, max_steps: 20000, ema_decay: 0.999}
    train: {out_dir: runs/diffusion_liver}

Load either with ``_settings.load_config(cls, path, overrides)``; ``tumorsynth config autoencoder``
and ``tumorsynth config diffusion`` print every setting with its default and description.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
from tumorsynth._types import LabelMapSpec
from tumorsynth.errors import InputError
from tumorsynth.models.tumor_diffusion import AutoencoderConfig, DenoiserConfig
from tumorsynth.training.config import CaseEntry, case_input_problems, case_label_map_problems

__all__ = [
    "AUTOENCODER_BOUNDS",
    "AutoencoderTrainConfig",
    "DIFFUSION_BOUNDS",
    "DiffusionTrainConfig",
    "GenerativeOptimConfig",
    "GenerativeRunConfig",
    "ScanDataConfig",
    "TumorDataConfig",
]


@dataclass(frozen=True)
class ScanDataConfig:
    """CT scans for the autoencoder (no labels needed).

    Attributes
    ----------
    images
        CT files, or folders whose *.nii/*.nii.gz files (and an nnU-Net dataset's imagesTr) are all used.
    val_fraction
        Share of whole scans held out for reconstruction PSNR/SSIM, in [0, 1).
    val_crops
        Crops scored per held-out scan.
    foreground_hu
        Crop centres are drawn among voxels above this HU (the body).
    """

    images: tuple[str, ...] = ()
    val_fraction: float = 0.2
    val_crops: int = 4
    foreground_hu: float = -500.0

    def check(self) -> list[str]:
        problems = bound_problems(self, section_bounds(AUTOENCODER_BOUNDS, "data"))
        if not self.images:
            problems.append("images: expected CT files or folders, found none")
        return problems

    def input_problems(self) -> list[str]:
        return [
            f"images[{index}]: {path}: CT file or folder not found"
            for index, path in enumerate(self.images)
            if not Path(path).exists()
        ]


@dataclass(frozen=True)
class TumorDataConfig:
    """Annotated tumors for the denoiser.

    Attributes
    ----------
    cases
        Scans with annotated tumors: dataset folders, case lists (.txt/.csv/.tsv of IMAGE LABEL lines), {path: DIR or LIST, label_map: ..} or {image: CT, label: SEG, label_map: ..}.
    label_map
        Label map of the cases (no default; entries may name their own): a preset, a JSON file or an inline {organ: id or [ids]}.
    organs
        Train on the tumors of these organs (empty: every tumor in the label map).
    min_voxels
        Tumors smaller than this many voxels are skipped.
    jitter
        The crop centre moves by up to this fraction of the crop from the tumor centre.
    scale_range
        Zoom range (low, high) of the crop: a tumor seen at other sizes.
    early_from_larger
        Share of crops that show a larger tumor zoomed out until it is early-stage sized
        (8-19 mm): its rim, texture and host, rescaled in mm. The early class gets its own
        training signal when the annotated data hold no small tumors (0: only real early ones).
    val_crops
        Fixed crops drawn for the samples.png preview.
    """

    cases: tuple[CaseEntry, ...] = ()
    label_map: LabelMapSpec | None = None
    organs: tuple[str, ...] = ()
    min_voxels: int = 8
    jitter: float = 0.125
    scale_range: tuple[float, float] = (0.85, 1.15)
    early_from_larger: float = 0.3
    val_crops: int = 4

    def check(self) -> list[str]:
        problems = bound_problems(self, section_bounds(DIFFUSION_BOUNDS, "data"))
        problems += case_label_map_problems(self.cases, self.label_map, "cases", "label_map")
        if not self.cases:
            problems.append("cases: expected scans with annotated tumors, found none")
        lo, hi = self.scale_range
        if not hi >= lo:
            problems.append(f"scale_range: expected (low, high), found {list(self.scale_range)}")
        return problems

    def input_problems(self) -> list[str]:
        return case_input_problems(self.cases, "cases")


@dataclass(frozen=True)
class GenerativeOptimConfig:
    """Adam for the network (and the discriminator), counted in steps.

    Attributes
    ----------
    lr
        Learning rate of the network.
    disc_lr
        Learning rate of the patch discriminator (autoencoder).
    batch_size
        Crops per step.
    max_steps
        Optimizer steps in all.
    warmup_steps
        Steps of linear warm-up, then cosine decay.
    amp
        bfloat16 mixed precision on GPUs that support it.
    grad_clip
        Gradient norm clipping threshold.
    adv_weight
        Weight of the adversarial loss (autoencoder).
    adv_start
        Step the adversarial loss starts at (autoencoder).
    ema_decay
        Exponential moving average of the denoiser's weights (what is saved), in [0, 1).
    """

    lr: float = 1e-4
    disc_lr: float = 4e-4
    batch_size: int = 2
    max_steps: int = 2000
    warmup_steps: int = 50
    amp: bool = True
    grad_clip: float = 1.0
    adv_weight: float = 0.01
    adv_start: int = 500
    ema_decay: float = 0.999

    def check(self) -> list[str]:
        return bound_problems(self, section_bounds(_COMMON_BOUNDS, "optim"))


@dataclass(frozen=True)
class GenerativeRunConfig:
    """Where results go and how often to log and score.

    Attributes
    ----------
    out_dir
        Folder of the run; must not hold another run unless ``--resume`` continues it.
    log_every
        Write a metrics.csv row every this many steps.
    val_every
        Score held-out crops every this many steps.
    device
        auto (GPU if there is one), cpu, cuda or cuda:N.
    max_minutes
        Stop (after saving) when this wall-clock budget is spent (null: no limit).
    """

    out_dir: str = "runs/generator"
    log_every: int = 10
    val_every: int = 500
    device: str = "auto"
    max_minutes: float | None = None

    def check(self) -> list[str]:
        return bound_problems(self, section_bounds(_COMMON_BOUNDS, "train"))


#: Allowed ranges shared by both generator trainings, checked by the ``check`` method of their
#: section (the network's by the run's), with the types, before any work.
_COMMON_BOUNDS: dict[str, Interval] = {
    "seed": AT_LEAST_0,
    "optim.lr": POSITIVE,
    "optim.disc_lr": POSITIVE,
    "optim.batch_size": AT_LEAST_1,
    "optim.max_steps": AT_LEAST_1,
    "optim.warmup_steps": AT_LEAST_0,
    "optim.grad_clip": POSITIVE,
    "optim.adv_weight": AT_LEAST_0,
    "optim.adv_start": AT_LEAST_0,
    "optim.ema_decay": Interval(0, 1, high_open=True),
    "train.log_every": AT_LEAST_1,
    "train.val_every": AT_LEAST_1,
    "train.max_minutes": POSITIVE,
    "model.channels": AT_LEAST_1,
}
AUTOENCODER_BOUNDS: dict[str, Interval] = _COMMON_BOUNDS | {
    "data.val_fraction": Interval(0, 1, high_open=True),
    "data.val_crops": AT_LEAST_1,
    "model.num_res_layers": AT_LEAST_1,
    "model.num_embeddings": AT_LEAST_1,
    "model.embedding_dim": AT_LEAST_1,
    "model.commitment_cost": AT_LEAST_0,
    "model.spacing_mm": POSITIVE,
    "model.crop_size": AT_LEAST_1,
}
DIFFUSION_BOUNDS: dict[str, Interval] = _COMMON_BOUNDS | {
    "data.min_voxels": AT_LEAST_1,
    "data.jitter": FRACTION,
    "data.scale_range": POSITIVE,
    "data.early_from_larger": FRACTION,
    "data.val_crops": AT_LEAST_1,
    "model.num_res_blocks": AT_LEAST_1,
    "model.num_head_channels": AT_LEAST_1,
    "model.norm_num_groups": AT_LEAST_1,
    "model.num_train_timesteps": AT_LEAST_1,
    "model.beta_start": Interval(0, 1, low_open=True, high_open=True),
    "model.beta_end": Interval(0, 1, low_open=True, high_open=True),
    "model.sample_steps": AT_LEAST_1,
}


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """The VQ autoencoder's training run (``tumorsynth train-autoencoder --config FILE``).

    Attributes
    ----------
    name
        Name of the run.
    seed
        Seed of the initialization, the scan split and the crops.
    data
        The CT scans.
    model
        The autoencoder and the crops it works on.
    optim
        The optimizer and its schedule.
    train
        Where the run goes.
    """

    name: str = "autoencoder"
    seed: int = 0
    data: ScanDataConfig = field(default_factory=ScanDataConfig)
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    optim: GenerativeOptimConfig = field(default_factory=GenerativeOptimConfig)
    train: GenerativeRunConfig = field(default_factory=GenerativeRunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "<config>") -> AutoencoderTrainConfig:
        return config_from_dict(cls, data, where)

    def check(self) -> list[str]:
        problems = bound_problems(self, run_bounds(AUTOENCODER_BOUNDS))
        try:
            self.model.validate("model")
        except InputError as exc:
            problems.append(f"{exc.where}: {exc.message}")
        return problems


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """The latent denoiser's training run (``tumorsynth train-diffusion --config FILE``).

    Attributes
    ----------
    name
        Name of the run.
    seed
        Seed of the initialization, the crops and the noise.
    autoencoder
        The autoencoder folder written by tumorsynth train-autoencoder (its out_dir/autoencoder).
    data
        The annotated tumors.
    model
        The denoiser and its noise schedule.
    optim
        The optimizer and its schedule.
    train
        Where the run goes.
    """

    name: str = "diffusion"
    seed: int = 0
    autoencoder: str = ""
    data: TumorDataConfig = field(default_factory=TumorDataConfig)
    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    optim: GenerativeOptimConfig = field(default_factory=GenerativeOptimConfig)
    train: GenerativeRunConfig = field(default_factory=GenerativeRunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "<config>") -> DiffusionTrainConfig:
        return config_from_dict(cls, data, where)

    def check(self) -> list[str]:
        problems = bound_problems(self, run_bounds(DIFFUSION_BOUNDS))
        if not self.autoencoder:
            problems.append(
                "autoencoder: expected the folder written by `tumorsynth train-autoencoder`, "
                "found nothing"
            )
        return problems

    def input_problems(self) -> list[str]:
        if not self.autoencoder or Path(self.autoencoder).is_dir():
            return []
        return [
            f"autoencoder: {self.autoencoder}: folder not found (expected the out_dir/autoencoder "
            "folder of `tumorsynth train-autoencoder`)"
        ]
