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
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from tumorsynth._settings import Interval, check_bounds, config_from_dict
from tumorsynth.errors import InputError
from tumorsynth.models.tumor_diffusion import AutoencoderConfig, DenoiserConfig
from tumorsynth.training.config import (
    AT_LEAST_0,
    AT_LEAST_1,
    FRACTION,
    POSITIVE,
    merge_settings,
    read_settings,
)

__all__ = [
    "AUTOENCODER_BOUNDS",
    "AutoencoderTrainConfig",
    "DIFFUSION_BOUNDS",
    "DiffusionTrainConfig",
    "GenerativeOptimConfig",
    "GenerativeRunConfig",
    "ScanDataConfig",
    "TumorDataConfig",
    "load_autoencoder_config",
    "load_diffusion_config",
]


@dataclass(frozen=True)
class ScanDataConfig:
    """CT scans for the autoencoder (no labels needed).

    ``images`` entries are files, or folders whose ``*.nii``/``*.nii.gz`` files (and the
    ``imagesTr`` of an nnU-Net dataset) are all used. ``foreground_hu``: crop centres are drawn
    among voxels above it (the body). ``val_crops`` crops per held-out scan are scored.
    """

    images: tuple[str, ...] = ()
    val_fraction: float = 0.2
    val_crops: int = 4
    foreground_hu: float = -500.0


@dataclass(frozen=True)
class TumorDataConfig:
    """Annotated tumors for the denoiser: ``cases`` as in training configs (dataset folders or
    ``{image, label, label_map}``), the tumors of ``organs`` (empty: all in the label map).

    ``jitter`` moves the crop centre by up to this fraction of the crop from the tumor centre;
    ``scale_range`` zooms the crop (a tumor seen at other sizes).
    """

    cases: tuple[str | dict[str, str], ...] = ()
    label_map: str = "msd"
    organs: tuple[str, ...] = ()
    min_voxels: int = 8
    jitter: float = 0.125
    scale_range: tuple[float, float] = (0.85, 1.15)
    val_crops: int = 4


@dataclass(frozen=True)
class GenerativeOptimConfig:
    """Adam for the network (and the discriminator), counted in steps.

    ``adv_weight``/``adv_start``: adversarial loss weight and the step it starts at (autoencoder);
    ``ema_decay``: exponential moving average of the denoiser's weights (what is saved).
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


@dataclass(frozen=True)
class GenerativeRunConfig:
    out_dir: str = "runs/generator"
    log_every: int = 10
    val_every: int = 500
    device: str = "auto"
    max_minutes: float | None = None


#: Allowed ranges shared by both generator trainings (checked with the types, before any work).
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
        config = config_from_dict(cls, data, where)
        check_bounds(config, AUTOENCODER_BOUNDS, where)
        if not config.data.images:
            raise InputError(where, "data.images: expected CT files or folders, found none")
        config.model.validate(f"{where}: model")
        return config


@dataclass(frozen=True)
class DiffusionTrainConfig:
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
        config = config_from_dict(cls, data, where)
        check_bounds(config, DIFFUSION_BOUNDS, where)
        if not config.autoencoder:
            raise InputError(
                where,
                "autoencoder: expected the folder written by `tumorsynth train-autoencoder`, "
                "found nothing",
            )
        if not config.data.cases:
            raise InputError(where, "data.cases: expected scans with annotated tumors, found none")
        lo, hi = config.data.scale_range
        if not hi >= lo:
            raise InputError(
                where,
                f"data.scale_range: expected (low, high), found {list(config.data.scale_range)}",
            )
        return config


def load_autoencoder_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None
) -> AutoencoderTrainConfig:
    merged = merge_settings(read_settings(path), overrides or {})
    return AutoencoderTrainConfig.from_dict(merged, str(path))


def load_diffusion_config(
    path: str | os.PathLike[str], overrides: dict[str, Any] | None = None
) -> DiffusionTrainConfig:
    merged = merge_settings(read_settings(path), overrides or {})
    return DiffusionTrainConfig.from_dict(merged, str(path))
