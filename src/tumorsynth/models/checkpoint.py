"""Save and load learned components: ``config.json`` + ``model.safetensors`` + its sha256.

The config is frozen with the weights; loading checks the file's hash and says exactly what does
not match between the stored config and the one a caller expects, and which weights are missing
or unexpected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tumorsynth import __version__
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path, ensure_writable_dir
from tumorsynth.io.identity import sha256_of

__all__ = [
    "config_differences",
    "load_pretrained_state",
    "load_state_strict",
    "save_pretrained",
    "sha256_of",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_pretrained(
    model: nn.Module, config: Mapping[str, Any], folder: str | os.PathLike[str], *, kind: str
) -> Path:
    """Write ``folder/config.json`` (config, kind, version, weights' sha256) and the weights."""
    folder = ensure_writable_dir(folder)
    module = model.module if hasattr(model, "module") else model  # DDP wraps the model
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    meta = {
        "kind": kind,
        "tumorsynth_version": __version__,
        "sha256": sha256_of(folder / WEIGHTS),
        "config": dict(config),
    }
    with atomic_path(folder / CONFIG) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n")
    return folder


def load_pretrained_state(
    folder: str | os.PathLike[str], *, kind: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint folder: (config, state dict), after checking kind and sha256."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(
                str(path),
                "checkpoint file is missing",
                fix=f"pass a folder written by tumorsynth ({CONFIG} + {WEIGHTS})",
            )
    try:
        meta = json.loads(config_path.read_text())
    except ValueError as exc:
        raise InputError(str(config_path), f"expected JSON, found unreadable text ({exc})") from exc
    if meta.get("kind") != kind:
        raise InputError(
            str(config_path), f"expected a {kind} checkpoint, found {meta.get('kind')!r}"
        )
    digest = sha256_of(weights_path)
    if digest != meta.get("sha256"):
        raise InputError(
            str(weights_path),
            f"sha256 {digest[:12]}... does not match the "
            f"config's {str(meta.get('sha256'))[:12]}...; the weights were changed "
            "or truncated",
        )
    return meta["config"], load_file(str(weights_path))


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load weights; name missing, unexpected and mis-shaped tensors when they do not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(
                "shape differs for "
                + ", ".join(
                    f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:5]
                )
            )
        raise InputError(where, "weights do not fit the network: " + "; ".join(parts))
    model.load_state_dict(dict(state))


def config_differences(
    stored: Mapping[str, Any], expected: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """Human-readable differences between two nested configs (``key: stored != expected``)."""
    out = []
    for key in sorted(set(stored) | set(expected)):
        name = f"{prefix}{key}"
        if key not in stored:
            out.append(f"{name}: missing in checkpoint (expected {expected[key]!r})")
        elif key not in expected:
            out.append(f"{name}: unknown key in checkpoint ({stored[key]!r})")
        elif isinstance(stored[key], Mapping) and isinstance(expected[key], Mapping):
            out.extend(config_differences(stored[key], expected[key], f"{name}."))
        elif _norm(stored[key]) != _norm(expected[key]):
            out.append(f"{name}: {stored[key]!r} in checkpoint != {expected[key]!r}")
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
