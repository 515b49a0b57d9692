"""The learned tumor model (DiffTumor-class): a 3-D VQ autoencoder and a mask-conditioned latent
diffusion denoiser, both MONAI networks, with frozen configs and safetensors checkpoints.

Conventions
-----------
- Crops are cubes of ``crop_size`` voxels at ``spacing_mm`` (RAS axes), intensities clipped to the
  HU window and mapped to [-1, 1] (:func:`hu_to_unit`).
- The autoencoder downsamples by 2 per entry of ``channels`` (two entries: 4x per axis, a 96^3
  crop becomes an ``embedding_dim`` x 24^3 latent), and vector-quantizes the latent.
- The denoiser sees ``[noisy latent, latent of the crop with the tumor zeroed, tumor mask on the
  latent grid]`` (concatenated channels) and a size class (0 early: diameter < 20 mm, 1 larger),
  and predicts the noise. It is trained with DDPM and sampled with DDIM in a few steps.

A checkpoint folder holds ``autoencoder/`` and ``denoiser/`` (each ``config.json`` +
``model.safetensors``, both hashed), so one folder is everything a generator needs. The denoiser's
config.json pins the autoencoder it was trained with (the hashes of its config.json and weights):
a denoiser beside another autoencoder is refused, even one with the same config. The model's
identity is the hashes of these four files (:attr:`TumorDiffusion.files`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from monai.inferers import LatentDiffusionInferer
from monai.networks.nets import VQVAE, DiffusionModelUNet, PatchDiscriminator
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn

from tumorsynth._settings import Interval, check_bounds, config_from_dict
from tumorsynth.errors import InputError
from tumorsynth.models.checkpoint import (
    CONFIG,
    WEIGHTS,
    config_differences,
    files_sha256,
    load_checkpoint,
    load_state_strict,
    save_pretrained,
)
from tumorsynth.organs import is_early_stage

__all__ = [
    "EARLY",
    "LARGER",
    "AutoencoderConfig",
    "DenoiserConfig",
    "TumorDiffusion",
    "build_autoencoder",
    "build_denoiser",
    "build_discriminator",
    "hu_to_unit",
    "initial_noise",
    "load_autoencoder",
    "unit_to_hu",
    "size_class_of",
]

AUTOENCODER_KIND = "tumorsynth-vq-autoencoder"
DENOISER_KIND = "tumorsynth-latent-denoiser"
#: Size classes the denoiser is conditioned on (DiffTumor trains early and larger tumors apart).
EARLY, LARGER = 0, 1


def size_class_of(diameter_mm: float) -> int:
    """``EARLY`` below DESIGN.md's early-stage diameter (20 mm), else ``LARGER``: the one mapping
    training crops and the generator share."""
    return EARLY if is_early_stage(diameter_mm) else LARGER


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of the VQ autoencoder and of the crops it works on.

    Attributes
    ----------
    channels
        Feature channels per level; each level downsamples 2x (two levels: 4x per axis).
    num_res_layers
        Residual layers per level.
    num_embeddings, embedding_dim
        Codebook size and latent channels (DiffTumor: 16384 x 8).
    commitment_cost
        Weight of the VQ commitment loss.
    hu_window
        HU range mapped to [-1, 1]; values outside are clipped.
    spacing_mm, crop_size
        Voxel size (mm, RAS) and edge length (voxels) of a crop.
    """

    channels: tuple[int, ...] = (32, 64)
    num_res_layers: int = 1
    num_embeddings: int = 2048
    embedding_dim: int = 8
    commitment_cost: float = 0.25
    hu_window: tuple[float, float] = (-175.0, 250.0)
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crop_size: int = 96

    @property
    def downsample(self) -> int:
        return 2 ** len(self.channels)

    @property
    def latent_size(self) -> int:
        return self.crop_size // self.downsample

    def validate(self, where: str) -> None:
        if self.crop_size % self.downsample:
            raise InputError(
                where,
                f"crop_size {self.crop_size} must be divisible by the autoencoder's downsampling "
                f"{self.downsample} (2 ** len(channels))",
            )
        lo, hi = self.hu_window
        if not hi > lo:
            raise InputError(where, f"hu_window must be (low, high), found {self.hu_window}")


@dataclass(frozen=True)
class DenoiserConfig:
    """Shape of the latent denoiser and of its noise schedule.

    ``sample_steps`` are the default DDIM steps per size class (early, larger): DiffTumor's 4 for
    early tumors and 50 for larger ones.

    ``beta_start``/``beta_end`` are the latent-diffusion betas for 1000 steps (0.0015, 0.0195)
    and are scaled by ``1000 / num_train_timesteps``, so the last training step is nearly pure
    noise for any step count (cumulative signal fraction 1.4e-4 at 1000 steps, 1.1e-4 at 200),
    which is what sampling from pure noise assumes. Unscaled, 200 steps would end at 0.17:
    sampling from zero-mean noise then shifts the whole crop (an early run made tumors and their
    surroundings 45 HU too dark).

    Attributes
    ----------
    channels
        Feature channels per level of the denoising UNet.
    attention_levels
        Self-attention at each level (one true/false per entry of channels).
    num_res_blocks
        Residual blocks per level.
    num_head_channels
        Channels per attention head.
    norm_num_groups
        Groups of the group normalization (divides every entry of channels).
    num_train_timesteps
        Diffusion steps of the noise schedule in training.
    beta_start, beta_end
        Noise schedule betas for 1000 steps, scaled by 1000 / num_train_timesteps.
    sample_steps
        Default DDIM sampling steps (early, larger tumors).
    host_relative
        Learn and sample tumors relative to their host: every crop is shifted so the parenchyma
        around the tumor sits at ``reference_hu`` (measured in a 3-10 mm shell in training, the
        scan's measured organ HU when sampling), and the sampled crop is shifted back. The same
        checkpoint then gives a bright portal-venous liver and a darker non-contrast one tumors
        of the contrast it learned, instead of the training scan's absolute HU. False in
        checkpoints made before it existed.
    reference_hu
        Where the host sits after the shift (HU).
    mask_fill_hu
        What the tumor region holds when the crop is encoded as the condition: None fills 0 on
        the [-1, 1] window scale (37.5 HU for the default window, as the first checkpoints
        did); DiffTumor fills -175 HU.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int = 2
    num_head_channels: int = 32
    norm_num_groups: int = 32
    num_train_timesteps: int = 200
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    sample_steps: tuple[int, int] = (4, 50)
    host_relative: bool = True
    reference_hu: float = 100.0
    mask_fill_hu: float | None = None

    def validate(self, latent_size: int, where: str) -> None:
        levels = 2 ** (len(self.channels) - 1)
        if latent_size % levels:
            raise InputError(
                where,
                f"the latent grid ({latent_size}) must be divisible by the denoiser's "
                f"downsampling {levels} (2 ** (len(channels) - 1))",
            )
        if len(self.attention_levels) != len(self.channels):
            raise InputError(where, "attention_levels needs one entry per channels entry")
        if self.beta_end * 1000.0 / self.num_train_timesteps >= 1.0:
            raise InputError(
                where,
                f"num_train_timesteps {self.num_train_timesteps} is too few for beta_end "
                f"{self.beta_end} (scaled by 1000 / steps it reaches 1)",
            )
        if any(c % self.norm_num_groups for c in self.channels):
            raise InputError(
                where,
                f"every channels entry must be divisible by norm_num_groups, found "
                f"{self.channels} / {self.norm_num_groups}",
            )


# -- intensities -----------------------------------------------------------------------------------
def hu_to_unit(hu: torch.Tensor, window: Sequence[float]) -> torch.Tensor:
    """HU -> [-1, 1] over ``window`` (clipped)."""
    lo, hi = float(window[0]), float(window[1])
    return ((hu.clamp(lo, hi) - lo) / (hi - lo)) * 2.0 - 1.0


def unit_to_hu(unit: torch.Tensor, window: Sequence[float]) -> torch.Tensor:
    lo, hi = float(window[0]), float(window[1])
    return (unit.clamp(-1.0, 1.0) + 1.0) * 0.5 * (hi - lo) + lo


# -- networks --------------------------------------------------------------------------------------
def build_autoencoder(config: AutoencoderConfig) -> VQVAE:
    levels = len(config.channels)
    return VQVAE(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        channels=tuple(config.channels),
        num_res_channels=tuple(config.channels),
        num_res_layers=config.num_res_layers,
        downsample_parameters=((2, 4, 1, 1),) * levels,
        upsample_parameters=((2, 4, 1, 1, 0),) * levels,
        num_embeddings=config.num_embeddings,
        embedding_dim=config.embedding_dim,
        commitment_cost=config.commitment_cost,
    )


def build_discriminator(config: AutoencoderConfig, channels: int = 32) -> nn.Module:
    """A 3-D PatchGAN discriminator for the autoencoder's adversarial loss (3 strided layers for
    a 96^3 crop, fewer for small crops)."""
    layers = max(1, min(3, int(math.log2(config.crop_size)) - 3))
    return PatchDiscriminator(
        spatial_dims=3, channels=channels, in_channels=1, out_channels=1, num_layers_d=layers
    )


def build_denoiser(config: DenoiserConfig, embedding_dim: int) -> DiffusionModelUNet:
    return DiffusionModelUNet(
        spatial_dims=3,
        in_channels=2 * embedding_dim + 1,  # noisy latent, masked-crop latent, mask
        out_channels=embedding_dim,
        channels=tuple(config.channels),
        attention_levels=tuple(config.attention_levels),
        num_res_blocks=config.num_res_blocks,
        num_head_channels=config.num_head_channels,
        norm_num_groups=config.norm_num_groups,
        num_class_embeds=2,
    )


def _betas(config: DenoiserConfig) -> dict[str, Any]:
    """Schedule settings shared by training and sampling (betas scaled to the step count)."""
    scale = 1000.0 / config.num_train_timesteps
    return {
        "num_train_timesteps": config.num_train_timesteps,
        "schedule": "scaled_linear_beta",
        "beta_start": config.beta_start * scale,
        "beta_end": config.beta_end * scale,
        "clip_sample": False,
    }


def train_scheduler(config: DenoiserConfig) -> DDPMScheduler:
    return DDPMScheduler(**_betas(config))


def sample_scheduler(config: DenoiserConfig, steps: int) -> DDIMScheduler:
    if not 1 <= steps <= config.num_train_timesteps:
        raise InputError(
            "steps", f"expected 1..{config.num_train_timesteps} sampling steps, found {steps}"
        )
    scheduler = DDIMScheduler(**_betas(config))
    scheduler.set_timesteps(steps)
    return scheduler


def load_autoencoder(folder: str | os.PathLike[str]) -> tuple[VQVAE, AutoencoderConfig]:
    """An autoencoder checkpoint written by ``tumorsynth train-autoencoder`` (hash-checked)."""
    model, config, _ = _load_autoencoder(folder)
    return model, config


def _load_autoencoder(
    folder: str | os.PathLike[str],
) -> tuple[VQVAE, AutoencoderConfig, dict[str, str]]:
    """The model, its config and its files' hashes (:attr:`Checkpoint.files`)."""
    checkpoint = load_checkpoint(folder, kind=AUTOENCODER_KIND)
    where = str(Path(folder) / CONFIG)
    config = config_from_dict(
        AutoencoderConfig, checkpoint.config, where, key_path="config", complete=True
    )
    config.validate(where)
    model = build_autoencoder(config)
    load_state_strict(model, checkpoint.state, str(folder))
    return model.eval(), config, checkpoint.files


def save_autoencoder(
    model: nn.Module, config: AutoencoderConfig, folder: str | os.PathLike[str]
) -> dict[str, str]:
    """Write an autoencoder checkpoint; returns its files' hashes."""
    return save_pretrained(model, asdict(config), folder, kind=AUTOENCODER_KIND)


# -- the model -------------------------------------------------------------------------------------
class TumorDiffusion:
    """Autoencoder + denoiser + noise schedule: fills a masked crop with a sampled tumor.

    Parameters
    ----------
    autoencoder, autoencoder_config
        The (frozen) VQ autoencoder.
    denoiser, config
        The latent denoiser (EMA weights when loaded from a checkpoint).
    scale_factor
        Latents are multiplied by this before diffusion (1 / their std on the training crops).
    files
        The identity of a saved model: sha256 of each file that shapes its output
        (``{"autoencoder/config.json": ..., "denoiser/model.safetensors": ...}``); set by
        :meth:`save_pretrained` and :meth:`from_pretrained`, empty for a model never saved.
    trained
        The size classes it saw in training; another class is sampled as the nearest of these
        (one annotated CT may hold only large tumors).
    trained_enhancement
        How contrast-enhanced its training tumors' hosts were (median of the organ profile's
        ``enhancement`` of each host's HU: 0.45 non-contrast .. 1 portal venous), so a generator
        can scale the learned contrast to another phase; None in checkpoints made before it was
        recorded (no scaling).
    """

    def __init__(
        self,
        autoencoder: VQVAE,
        autoencoder_config: AutoencoderConfig,
        denoiser: DiffusionModelUNet,
        config: DenoiserConfig,
        scale_factor: float = 1.0,
        files: Mapping[str, str] | None = None,
        trained: Sequence[int] = (EARLY, LARGER),
        trained_enhancement: float | None = None,
    ) -> None:
        self.autoencoder = autoencoder.eval()
        self.autoencoder_config = autoencoder_config
        self.denoiser = denoiser.eval()
        self.config = config
        self.scale_factor = float(scale_factor)
        self.files = dict(sorted((files or {}).items()))
        self.trained = tuple(int(c) for c in trained)
        if not self.trained:
            raise InputError("trained", "expected at least one trained size class, found none")
        self.trained_enhancement = trained_enhancement

    @property
    def sha256(self) -> str:
        """One hash of :attr:`files` (names and hashes); empty for a model never saved."""
        return files_sha256(self.files)

    def size_label(self, size_class: int) -> int:
        """The class embedding used for ``size_class``: itself if trained, else the nearest."""
        return min(self.trained, key=lambda c: (abs(c - int(size_class)), c))

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: str | torch.device) -> TumorDiffusion:
        self.autoencoder.to(device)
        self.denoiser.to(device)
        return self

    # -- pieces shared by training and sampling ----------------------------------------------------
    def condition(self, crops_unit: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``[latent of the crop with the tumor filled, mask on the latent grid]`` (B, E+1, ...)
        (filled with ``config.mask_fill_hu``; 0 on the unit scale when None)."""
        masked = crops_unit * (1.0 - masks)
        if self.config.mask_fill_hu is not None:
            fill = hu_to_unit(
                torch.tensor(float(self.config.mask_fill_hu)), self.autoencoder_config.hu_window
            )
            masked = masked + masks * fill.to(masked.dtype)
        latent = self.autoencoder.encode_stage_2_inputs(masked) * self.scale_factor
        d, h, w = (int(n) for n in latent.shape[2:])
        mask_latent = F.adaptive_avg_pool3d(masks, (d, h, w))
        return torch.cat([latent, mask_latent.to(latent.dtype)], dim=1)

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        n = self.autoencoder_config.latent_size
        return (batch, self.autoencoder_config.embedding_dim, n, n, n)

    def inferer(self, scheduler: DDPMScheduler | DDIMScheduler) -> LatentDiffusionInferer:
        return LatentDiffusionInferer(scheduler, scale_factor=self.scale_factor)

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        crops_hu: torch.Tensor,
        masks: torch.Tensor,
        size_classes: Sequence[int],
        *,
        steps: int | None = None,
        generators: Sequence[torch.Generator | None] | torch.Generator | None = None,
        amp: bool = True,
        host_hu: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """Sample tumors into masked crops (a batch); returns the decoded crops in HU.

        Parameters
        ----------
        crops_hu
            (B, 1, N, N, N) float HU crops at the model's spacing, on the model's device.
        masks
            (B, 1, N, N, N) tumor masks in [0, 1] (the region to fill).
        size_classes
            Per crop, ``EARLY`` (0) or ``LARGER`` (1).
        steps
            DDIM steps (default: the config's for the first crop's size class).
        generators
            One ``torch.Generator`` per crop (or one for the batch): the initial noise is drawn
            on the CPU from it, so a seed gives the same tumor on any device and in any batch.
        amp
            bf16 autocast on CUDA (ignored on CPU).
        host_hu
            Per crop, the HU of the parenchyma the tumor goes into; required by a
            ``host_relative`` model (the crop is shifted to ``reference_hu`` and back), ignored
            by others.
        """
        batch = crops_hu.shape[0]
        device = crops_hu.device
        window = self.autoencoder_config.hu_window
        shift = self._host_shift(host_hu, batch, device)
        crops_hu = crops_hu + shift
        steps = int(steps or self.config.sample_steps[int(size_classes[0])])
        noise = initial_noise(self.latent_shape(batch), generators).to(device)
        labels = torch.as_tensor(
            [self.size_label(c) for c in size_classes], dtype=torch.long, device=device
        )
        use_amp = amp and device.type == "cuda"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            cond = self.condition(hu_to_unit(crops_hu, window), masks)
            decoded = self.inferer(sample_scheduler(self.config, steps)).sample(
                input_noise=noise,
                autoencoder_model=self.autoencoder,
                diffusion_model=partial(self.denoiser, class_labels=labels),  # type: ignore[arg-type]
                conditioning=cond,
                mode="concat",
                verbose=False,
            )
        return unit_to_hu(decoded.float(), window) - shift  # type: ignore[union-attr]

    def _host_shift(
        self, host_hu: Sequence[float] | None, batch: int, device: torch.device
    ) -> torch.Tensor:
        """(B, 1, 1, 1, 1) HU added to each crop before sampling (0 for a model that is not
        host-relative)."""
        if not self.config.host_relative:
            return torch.zeros((batch, 1, 1, 1, 1), device=device)
        if host_hu is None or len(host_hu) != batch:
            raise InputError(
                "host_hu",
                f"this model samples relative to the host: expected {batch} host HU values, "
                f"found {None if host_hu is None else len(host_hu)}",
            )
        values = [self.config.reference_hu - float(h) for h in host_hu]
        return torch.tensor(values, dtype=torch.float32, device=device).view(batch, 1, 1, 1, 1)

    # -- checkpoints -------------------------------------------------------------------------------
    def save_pretrained(
        self, folder: str | os.PathLike[str], extra: Mapping[str, Any] | None = None
    ) -> Path:
        """Write ``folder/autoencoder`` and ``folder/denoiser`` (config + safetensors, hashed);
        the denoiser's config.json pins the autoencoder written beside it."""
        folder = Path(folder)
        ae_files = _prefixed(
            "autoencoder",
            save_autoencoder(self.autoencoder, self.autoencoder_config, folder / "autoencoder"),
        )
        config = {
            "denoiser": asdict(self.config),
            "scale_factor": self.scale_factor,
            "trained_size_classes": list(self.trained),
            "trained_enhancement": self.trained_enhancement,
            "autoencoder": asdict(self.autoencoder_config),
            **dict(extra or {}),
        }
        denoiser_files = save_pretrained(
            self.denoiser, config, folder / "denoiser", kind=DENOISER_KIND, requires=ae_files
        )
        self.files = {**ae_files, **_prefixed("denoiser", denoiser_files)}
        return folder

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        expect: Mapping[str, Any] | None = None,
    ) -> TumorDiffusion:
        """Load a checkpoint folder; ``expect`` (a partial denoiser config) must match it.

        Every file is hash-checked (each read once); a denoiser beside an autoencoder other than
        the one it pins is refused, naming both folders and the hashes. Mismatches are errors that
        list each differing setting, a missing or mistyped setting is named with its file, and
        weights that do not fit the configured network name the missing, unexpected and
        mis-shaped tensors.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(
                str(folder),
                "expected a diffusion checkpoint folder, found nothing there",
                fix="pass the out_dir of `tumorsynth train-diffusion` (or its checkpoints/best)",
            )
        autoencoder, ae_config, ae_files = _load_autoencoder(folder / "autoencoder")
        checkpoint = load_checkpoint(folder / "denoiser", kind=DENOISER_KIND)
        ae_files = _prefixed("autoencoder", ae_files)
        _check_pin(folder, checkpoint.requires, ae_files)
        where = str(folder / "denoiser" / CONFIG)
        stored = _stored_denoiser(checkpoint.config, where)
        diffs = config_differences(stored.autoencoder, asdict(ae_config))
        if diffs:
            raise InputError(
                where,
                "the denoiser was trained on another autoencoder: " + "; ".join(diffs),
            )
        config = stored.denoiser
        config.validate(ae_config.latent_size, where)
        if expect:
            diffs = config_differences(asdict(config), {**asdict(config), **dict(expect)})
            if diffs:
                raise InputError(where, "checkpoint does not match: " + "; ".join(diffs))
        denoiser = build_denoiser(config, ae_config.embedding_dim)
        load_state_strict(denoiser, checkpoint.state, str(folder / "denoiser"))
        files = {**ae_files, **_prefixed("denoiser", checkpoint.files)}
        model = cls(
            autoencoder,
            ae_config,
            denoiser,
            config,
            stored.scale_factor,
            files,
            stored.trained_size_classes,
            stored.trained_enhancement,
        )
        return model.to(device)


def initial_noise(
    shape: tuple[int, ...], generators: Sequence[torch.Generator | None] | torch.Generator | None
) -> torch.Tensor:
    """Standard noise of ``shape``: from one generator (or the global one), or one generator per
    item of the batch (drawn on the CPU, so a seed gives the same result on any device)."""
    if generators is None or isinstance(generators, torch.Generator):
        return torch.randn(shape, generator=generators)
    if len(generators) != shape[0]:
        raise InputError("generators", f"expected {shape[0]} generators, found {len(generators)}")
    return torch.stack([torch.randn(shape[1:], generator=g) for g in generators])


def _prefixed(part: str, files: Mapping[str, str]) -> dict[str, str]:
    return {f"{part}/{name}": digest for name, digest in files.items()}


def _check_pin(folder: Path, pinned: Mapping[str, str], ae_files: Mapping[str, str]) -> None:
    """Refuse an autoencoder other than the one the denoiser's config.json pins."""
    if not pinned:
        warnings.warn(
            f"{folder / 'denoiser' / CONFIG}: written before denoisers pinned their autoencoder; "
            f"that {folder / 'autoencoder'} is the one it was trained with cannot be verified",
            stacklevel=3,
        )
        return
    for name in (f"autoencoder/{WEIGHTS}", f"autoencoder/{CONFIG}"):  # weights: the likelier cause
        if pinned.get(name) != ae_files[name]:
            raise InputError(
                str(folder / "autoencoder"),
                f"is not the autoencoder the denoiser in {folder / 'denoiser'} was trained "
                f"with: its {name.split('/')[1]} has sha256 {ae_files[name][:12]}..., the "
                f"denoiser pins {str(pinned.get(name))[:12]}...",
                fix="put back the autoencoder/ folder written with this denoiser by "
                "train-diffusion, or train the denoiser on this autoencoder",
            )


#: Denoiser settings of the checkpoints written before they existed.
_BEFORE_HOST_RELATIVE = {"host_relative": False, "reference_hu": 100.0, "mask_fill_hu": None}


@dataclass(frozen=True)
class _StoredDenoiser:
    """The ``config`` entry of a denoiser's config.json (written by :meth:`save_pretrained`)."""

    denoiser: DenoiserConfig
    autoencoder: dict[str, Any]
    scale_factor: float
    trained_size_classes: tuple[Literal[0, 1], ...]
    trained_enhancement: float | None


def _stored_denoiser(stored: Mapping[str, Any], where: str) -> _StoredDenoiser:
    """Every setting present and of its type (extra keys, such as ``trained_on``, are notes)."""
    known = {k: v for k, v in stored.items() if k in _StoredDenoiser.__dataclass_fields__}
    if isinstance(known.get("denoiser"), Mapping):
        # settings added after the first checkpoints: absent means the behaviour before them
        known["denoiser"] = {**_BEFORE_HOST_RELATIVE, **known["denoiser"]}
        known.setdefault("trained_enhancement", None)
    config = config_from_dict(_StoredDenoiser, known, where, key_path="config", complete=True)
    bounds = {
        "scale_factor": Interval(0, low_open=True),
        "trained_enhancement": Interval(0, 1, low_open=True),
    }
    check_bounds(config, bounds, where, key_path="config")
    if not config.trained_size_classes:
        raise InputError(
            where,
            f"config.trained_size_classes: expected at least one of {EARLY} (early) and "
            f"{LARGER} (larger), found none",
        )
    return config
