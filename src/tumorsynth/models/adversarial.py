"""The FreeTumor-class model: a 3-D network that changes a healthy crop's intensities inside a
tumor mask, by a bounded and smooth amount relative to the host parenchyma.

The generator sees ``[crop windowed to [-1, 1] after the host shift, tumor mask, noise]`` on the
model's grid and predicts a change ``max_change_hu * tanh(.)``, smoothed by a Gaussian of
``smooth_mm`` (MONAI's ``GaussianFilter``, differentiable); the synthetic crop is
``crop + mask * change``. Before the network sees it the crop is shifted so its host sits at
``reference_hu`` (as for the host-relative diffusion model), so one checkpoint learns tumors
relative to their parenchyma and works in scans of other contrast phases. The noise channel
(drawn from a per-tumor seed) gives different tumors for the same mask.

The discriminator (training only) is a voxel-wise 3-class network: background, real tumor,
synthetic tumor (FreeTumor's). A checkpoint is one folder (``config.json`` + ``model.safetensors``,
hashed), its identity the hashes of both files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from monai.networks.layers import GaussianFilter
from monai.networks.nets import UNet
from torch import nn

from tumorsynth._settings import config_from_dict
from tumorsynth.errors import InputError
from tumorsynth.models.checkpoint import (
    CONFIG,
    files_sha256,
    load_checkpoint,
    load_state_strict,
    save_pretrained,
)
from tumorsynth.models.tumor_diffusion import hu_to_unit, initial_noise

__all__ = [
    "ADVERSARY_KIND",
    "AdversarialConfig",
    "TumorAdversary",
    "build_change_net",
    "build_voxel_discriminator",
]

ADVERSARY_KIND = "tumorsynth-adversarial-generator"
#: The discriminator's classes.
BACKGROUND, REAL_TUMOR, SYNTHETIC_TUMOR = 0, 1, 2


@dataclass(frozen=True)
class AdversarialConfig:
    """Shape of the adversarial generator and of the crops it works on.

    Attributes
    ----------
    crop_size
        Edge of the cube (voxels) at ``spacing_mm``; divisible by 2 ** (len(channels) - 1).
    spacing_mm
        The cube's voxel size (RAS axes).
    hu_window
        HU range mapped to [-1, 1] for the network's input.
    channels
        Feature channels per level of the generator's UNet (and the discriminator's).
    max_change_hu
        Bound of the intensity change (the tanh's scale), HU.
    smooth_mm
        Std of the Gaussian that smooths the change (mm at the model's spacing; 0: none).
    reference_hu
        Where the host parenchyma sits after the shift (HU).
    """

    crop_size: int = 64
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    hu_window: tuple[float, float] = (-175.0, 250.0)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    max_change_hu: float = 150.0
    smooth_mm: float = 1.5
    reference_hu: float = 100.0

    def validate(self, where: str) -> None:
        problems = []
        levels = 2 ** (len(self.channels) - 1)
        if len(self.channels) < 2:
            problems.append(f"channels: expected two or more levels, found {list(self.channels)}")
        elif self.crop_size % levels:
            problems.append(
                f"crop_size: expected a multiple of {levels} (2 ** (len(channels) - 1)), "
                f"found {self.crop_size}"
            )
        if not self.max_change_hu > 0:
            problems.append(f"max_change_hu: expected > 0, found {self.max_change_hu}")
        if self.smooth_mm < 0:
            problems.append(f"smooth_mm: expected >= 0, found {self.smooth_mm}")
        if min(self.spacing_mm) <= 0:
            problems.append(f"spacing_mm: expected positive sizes, found {list(self.spacing_mm)}")
        if not self.hu_window[1] > self.hu_window[0]:
            problems.append(f"hu_window: expected (low, high), found {list(self.hu_window)}")
        if problems:
            raise InputError(where, "; ".join(problems))


def _unet(config: AdversarialConfig, in_channels: int, out_channels: int) -> nn.Module:
    return UNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(config.channels),
        strides=(2,) * (len(config.channels) - 1),
        num_res_units=1,
        norm="instance",
    )


def build_change_net(config: AdversarialConfig) -> nn.Module:
    """The generator: (crop, mask, noise) -> one channel, before the tanh."""
    return _unet(config, 3, 1)


def build_voxel_discriminator(config: AdversarialConfig) -> nn.Module:
    """The discriminator: a windowed crop -> logits of background / real / synthetic tumor."""
    return _unet(config, 1, 3)


class TumorAdversary:
    """The trained generator network with its config: changes masked crops into tumors.

    Parameters
    ----------
    net
        :func:`build_change_net` of ``config`` (weights loaded).
    config
        Its :class:`AdversarialConfig`.
    files
        The sha256 of the checkpoint's files (empty for a model never saved).
    """

    def __init__(
        self, net: nn.Module, config: AdversarialConfig, files: Mapping[str, str] | None = None
    ) -> None:
        self.net = net
        self.config = config
        self.files = dict(sorted((files or {}).items()))
        sigma = config.smooth_mm / min(config.spacing_mm)
        self.smooth = GaussianFilter(3, sigma) if sigma > 0 else nn.Identity()

    @property
    def sha256(self) -> str:
        """One hash of :attr:`files` (names and hashes); empty for a model never saved."""
        return files_sha256(self.files)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> TumorAdversary:
        self.net.to(device)
        self.smooth.to(device)
        return self

    def noise(self, shape: Sequence[int], generators: Sequence[torch.Generator]) -> torch.Tensor:
        """(B, 1, N, N, N) standard noise, each tumor's from its own generator (drawn on the
        CPU, so a seed gives the same tumor on any device)."""
        return initial_noise(tuple(int(n) for n in shape), generators)

    def change(
        self,
        crops_hu: torch.Tensor,
        masks: torch.Tensor,
        host_hu: Sequence[float],
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """The intensity change (B, 1, N, N, N) in HU inside each mask (0 outside it), for crops
        whose hosts measure ``host_hu``. Differentiable (training calls it too)."""
        shift = torch.tensor(
            [self.config.reference_hu - float(h) for h in host_hu],
            dtype=crops_hu.dtype,
            device=crops_hu.device,
        ).view(-1, 1, 1, 1, 1)
        x = hu_to_unit(crops_hu + shift, self.config.hu_window)
        raw = self.net(torch.cat([x, masks, noise.to(x.device, x.dtype)], dim=1))
        change = self.smooth(self.config.max_change_hu * torch.tanh(raw))
        return change * masks

    @torch.no_grad()
    def sample(
        self,
        crops_hu: torch.Tensor,
        masks: torch.Tensor,
        host_hu: Sequence[float],
        generators: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """The synthetic crops (B, 1, N, N, N) in HU: ``crop + change``."""
        noise = self.noise(tuple(crops_hu.shape), generators)
        return crops_hu + self.change(crops_hu, masks, host_hu, noise)

    # -- checkpoints -------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder`` (config.json + model.safetensors, hashed); sets :attr:`files`."""
        self.files = save_pretrained(self.net, asdict(self.config), folder, kind=ADVERSARY_KIND)
        return Path(folder)

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike[str], *, device: str | torch.device = "cpu"
    ) -> TumorAdversary:
        """Load a checkpoint folder (hashes checked; a setting missing or of the wrong type, and
        weights that do not fit, are named with the file)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(
                str(folder),
                "expected an adversarial generator checkpoint folder, found nothing there",
                fix="pass the model folder of `tumorsynth train-adversarial`",
            )
        checkpoint = load_checkpoint(folder, kind=ADVERSARY_KIND)
        where = str(folder / CONFIG)
        config = config_from_dict(
            AdversarialConfig, checkpoint.config, where, key_path="config", complete=True
        )
        config.validate(where)
        net = build_change_net(config)
        load_state_strict(net, checkpoint.state, str(folder))
        return cls(net.eval(), config, checkpoint.files).to(device)
