"""Segmentation networks: MONAI's UNet, DynUNet configured the nnU-Net way, and SwinUNETR.

One frozen :class:`SegmentorConfig` describes a network; :func:`build_segmentor` builds it. The
DynUNet topology follows nnU-Net's planning rule (:func:`nnunet_topology`): an axis is pooled while
its feature map stays at least 4 voxels and its spacing is not more than twice the finest one;
an axis whose spacing is much coarser gets 1-voxel kernels in the first stages.

A trained segmentor is a checkpoint folder written by :func:`save_segmentor` and read by
:func:`load_segmentor`; its config holds the network (``model``) and the preprocessing it was
trained with (``spacing_mm``, ``hu_window``, ``patch_size``, ``organ``), which training and
prediction both build with :func:`resample_transforms` and :func:`window_transform`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tumorsynth._settings import config_from_dict
from tumorsynth.io.nifti import RAS_LABELS
from tumorsynth.models.checkpoint import load_checkpoint, load_state_strict, save_pretrained
from tumorsynth.models.device import pick_device

__all__ = [
    "BACKBONES",
    "SEGMENTOR_KIND",
    "SegmentorConfig",
    "build_segmentor",
    "count_parameters",
    "load_segmentor",
    "load_segmentor_files",
    "nnunet_topology",
    "resample_transforms",
    "save_segmentor",
    "window_transform",
]

#: The ``kind`` of a segmentor checkpoint (a folder of another kind is refused on loading).
SEGMENTOR_KIND = "segmentor"

Backbone = Literal["unet", "dynunet", "swinunetr"]
BACKBONES: tuple[str, ...] = ("unet", "dynunet", "swinunetr")


@dataclass(frozen=True)
class SegmentorConfig:
    """A segmentation network.

    Attributes
    ----------
    backbone
        ``unet`` (MONAI UNet with residual units), ``dynunet`` (nnU-Net-style), ``swinunetr``.
    in_channels, out_channels
        Input channels (1: CT) and classes including background (in training: 1 + 2 per organ
        of ``data.organ``, which a default of 3 follows).
    patch_size
        Training crop in voxels (x, y, z); SwinUNETR needs multiples of 32.
    spacing_mm
        Voxel size the network works at (sets the DynUNet topology).
    channels
        UNet / DynUNet feature counts per stage (DynUNet: first ones used, capped at 320).
    feature_size
        SwinUNETR feature size (multiple of 12).
    swin_v2
        SwinUNETR v2 (residual convolution blocks in the encoder).
    deep_supervision
        DynUNet deep supervision heads (training only).
    dropout
        Dropout probability (UNet, DynUNet), in [0, 1).
    """

    backbone: Backbone = "unet"
    in_channels: int = 1
    out_channels: int = 3
    patch_size: tuple[int, int, int] = (96, 96, 96)
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    channels: tuple[int, ...] = (32, 64, 128, 256, 320)
    feature_size: int = 48
    swin_v2: bool = False
    deep_supervision: bool = False
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: Any, where: str = "segmentor checkpoint", key_path: str = "config.model"
    ) -> SegmentorConfig:
        """The config a checkpoint stored (every setting present and of its type), or an error
        naming ``where`` (the config.json) and the key."""
        return config_from_dict(cls, data, where, key_path=key_path, complete=True)


def nnunet_topology(
    patch_size: Sequence[int],
    spacing_mm: Sequence[float],
    *,
    min_feature_map: int = 4,
    max_stages: int = 6,
) -> tuple[list[list[int]], list[list[int]]]:
    """Kernels and strides per stage by nnU-Net's rule (first stage stride 1).

    Examples
    --------
    >>> kernels, strides = nnunet_topology((96, 96, 96), (1.5, 1.5, 1.5))
    >>> strides[:3]
    [[1, 1, 1], [2, 2, 2], [2, 2, 2]]
    """
    size = list(patch_size)
    spacing = list(spacing_mm)
    kernels: list[list[int]] = []
    strides: list[list[int]] = [[1, 1, 1]]
    kernels.append([3 if s <= 2 * min(spacing) else 1 for s in spacing])
    while len(strides) < max_stages:
        finest = min(spacing)
        pool = [
            int(n >= 2 * min_feature_map and s <= 2 * finest)
            for n, s in zip(size, spacing, strict=True)
        ]
        if not any(pool):
            break
        strides.append([2 if p else 1 for p in pool])
        size = [n // 2 if p else n for n, p in zip(size, pool, strict=True)]
        spacing = [s * 2 if p else s for s, p in zip(spacing, pool, strict=True)]
        kernels.append([3 if s <= 2 * min(spacing) else 1 for s in spacing])
    return kernels, strides


def build_segmentor(config: SegmentorConfig) -> nn.Module:
    """The network ``config`` describes (MONAI implementations, randomly initialized)."""
    if config.backbone == "unet":
        from monai.networks.nets import UNet

        chans = tuple(config.channels)
        return UNet(
            spatial_dims=3,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            channels=chans,
            strides=(2,) * (len(chans) - 1),
            num_res_units=2,
            norm="instance",
            dropout=config.dropout,
        )
    if config.backbone == "dynunet":
        from monai.networks.nets import DynUNet

        kernels, strides = nnunet_topology(config.patch_size, config.spacing_mm)
        filters = [
            min(config.channels[i] if i < len(config.channels) else 320, 320)
            for i in range(len(strides))
        ]
        return DynUNet(
            spatial_dims=3,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            kernel_size=kernels,
            strides=strides,
            upsample_kernel_size=strides[1:],
            filters=filters,
            norm_name=("INSTANCE", {"affine": True}),
            deep_supervision=config.deep_supervision,
            deep_supr_num=max(1, min(2, len(strides) - 2)),
            res_block=True,
            dropout=config.dropout or None,
        )
    if config.backbone == "swinunetr":
        from monai.networks.nets import SwinUNETR

        if any(p % 32 for p in config.patch_size):
            raise ValueError(
                f"SwinUNETR needs a patch size divisible by 32, got {config.patch_size}"
            )
        return SwinUNETR(
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            feature_size=config.feature_size,
            use_v2=config.swin_v2,
            drop_rate=config.dropout,
            spatial_dims=3,
        )
    raise ValueError(f"unknown backbone {config.backbone!r}; known are {BACKBONES}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_segmentor(
    model: nn.Module, config: Mapping[str, Any], folder: str | os.PathLike[str]
) -> dict[str, str]:
    """Write a segmentor checkpoint (``config.json`` + ``model.safetensors``, hash-pinned).

    ``config`` holds ``model`` (a :meth:`SegmentorConfig.to_dict`) and what prediction needs
    to prepare a CT as in training: ``organ``, ``spacing_mm``, ``hu_window``, ``patch_size``.
    A DDP-wrapped model is saved as its module. Returns the checkpoint's file hashes (see
    :func:`~tumorsynth.models.checkpoint.save_pretrained`).
    """
    return save_pretrained(model, config, folder, kind=SEGMENTOR_KIND)


def load_segmentor(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a checkpoint written by :func:`save_segmentor` (hashes checked, in eval
    mode, on ``device``: a :class:`torch.device` or a name for
    :func:`~tumorsynth.models.device.pick_device`) and its config."""
    model, config, _ = load_segmentor_files(folder, device)
    return model, config


def load_segmentor_files(
    folder: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any], dict[str, str]]:
    """:func:`load_segmentor`, and the sha256 of the checkpoint's files (its identity, for
    records that name the segmentor they were judged by)."""
    checkpoint = load_checkpoint(folder, kind=SEGMENTOR_KIND)
    config = checkpoint.config
    model_config = SegmentorConfig.from_dict(config.get("model"), str(Path(folder) / "config.json"))
    model = build_segmentor(model_config)
    load_state_strict(model, checkpoint.state, str(folder))
    target = pick_device(device) if isinstance(device, str) else device
    return model.to(target).eval(), config, dict(checkpoint.files)


def resample_transforms(spacing_mm: Sequence[float], *, label: bool = False) -> list[Any]:
    """A segmentor's geometry: orient to RAS and resample to ``spacing_mm`` (x, y, z in mm),
    the image linearly and, with ``label``, the label by nearest neighbour.

    MONAI dictionary transforms on ``image`` (and ``label``); both are invertible, so a
    prediction goes back onto the input grid with ``Compose(...).inverse``.
    """
    from monai.transforms import Orientationd, Spacingd

    keys = ("image", "label") if label else ("image",)
    modes = ("bilinear", "nearest") if label else ("bilinear",)
    return [
        Orientationd(keys=keys, axcodes="RAS", labels=RAS_LABELS),
        Spacingd(keys=keys, pixdim=tuple(spacing_mm), mode=modes),
    ]


def window_transform(hu_window: Sequence[float]) -> Any:
    """The network's input intensities: ``image`` HU clipped to ``hu_window`` (low, high) and
    scaled to 0..1."""
    from monai.transforms import ScaleIntensityRanged

    lo, hi = hu_window
    return ScaleIntensityRanged(keys="image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
