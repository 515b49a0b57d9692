"""Which torch device a model runs on, and how processes on such devices talk (DDP)."""

from __future__ import annotations

import os

import torch

from tumorsynth.errors import InputError

__all__ = ["ddp_backend", "pick_device"]


def pick_device(name: str) -> torch.device:
    """``auto``: this rank's GPU (``LOCAL_RANK``) when there is one, else the CPU; otherwise
    the named device (``cpu``, ``cuda``, ``cuda:1``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise InputError("device", f"expected auto, cpu or cuda[:N], found {name!r}") from exc


def ddp_backend(device: torch.device) -> str:
    """The ``torch.distributed`` backend for processes on ``device``: NCCL between GPUs, Gloo
    between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"
