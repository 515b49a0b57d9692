"""Save and load learned components: ``config.json`` + ``model.safetensors``, both pinned by hash.

A checkpoint folder's ``config.json`` holds the frozen config, the kind, the weights' sha256
(``sha256``), the hashes of other checkpoint files it was made with (``requires``: a denoiser pins
its autoencoder) and ``config_sha256``, the sha256 of its own content (the canonical JSON of every
other key), so an edit that keeps the file valid JSON is refused as surely as changed weights.

Loading reads each file once: the weights are hashed from the bytes that are then deserialized,
the config is parsed strictly (``NaN``/``Infinity`` and numbers that overflow to infinity are
refused, naming the key); callers build their config dataclass with
``_settings.config_from_dict(..., complete=True)``, so every setting must be present and of its
declared type. A checkpoint's identity is :attr:`Checkpoint.files`:
``{"config.json": config_sha256, "model.safetensors": sha256}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from tumorsynth import __version__
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path, ensure_writable_dir

__all__ = [
    "CONFIG",
    "WEIGHTS",
    "Checkpoint",
    "config_differences",
    "config_sha256",
    "files_sha256",
    "load_checkpoint",
    "load_pretrained_state",
    "load_state_strict",
    "save_pretrained",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder read and verified by :func:`load_checkpoint`.

    Attributes
    ----------
    config
        The stored config (the ``config`` key of ``config.json``).
    state
        The weights (CPU tensors).
    files
        ``{"config.json": sha256 of its content, "model.safetensors": sha256 of its bytes}``.
    requires
        Hashes of other checkpoint files this one was made with, keyed by their path relative to
        the folder that holds this checkpoint (e.g. ``"autoencoder/model.safetensors"``).
    """

    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    files: dict[str, str]
    requires: dict[str, str]


def save_pretrained(
    model: nn.Module,
    config: Mapping[str, Any],
    folder: str | os.PathLike[str],
    *,
    kind: str,
    requires: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write ``folder/model.safetensors`` and ``folder/config.json`` (config, kind, version,
    the weights' sha256, ``requires`` and the config's own content hash).

    Returns the checkpoint's identity, as :attr:`Checkpoint.files` will read it back:
    ``{"config.json": config_sha256, "model.safetensors": sha256}``.
    """
    folder = ensure_writable_dir(folder)
    config_path = folder / CONFIG
    bad = _non_finite_key(dict(config))
    if bad is not None:
        raise InputError(str(config_path), f"config setting {bad} is NaN or infinite")
    module: nn.Module = model.module if hasattr(model, "module") else model  # type: ignore[assignment]  # DDP
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    data = save_safetensors(state)
    with atomic_path(folder / WEIGHTS) as tmp:
        tmp.write_bytes(data)
    meta: dict[str, Any] = {
        "kind": kind,
        "tumorsynth_version": __version__,
        "sha256": hashlib.sha256(data).hexdigest(),
        "config": dict(config),
    }
    if requires:
        meta["requires"] = dict(sorted(requires.items()))
    meta = json.loads(json.dumps(meta, default=_jsonable))  # what a reader will see
    meta["config_sha256"] = config_sha256(meta)
    with atomic_path(config_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return {CONFIG: meta["config_sha256"], WEIGHTS: meta["sha256"]}


def files_sha256(files: Mapping[str, str]) -> str:
    """One hash of a model's files (names and their sha256): its identity in a version string;
    empty for a model never saved."""
    if not files:
        return ""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def config_sha256(meta: Mapping[str, Any]) -> str:
    """sha256 of a ``config.json``'s content: the canonical JSON (sorted keys, no spaces) of every
    key except ``config_sha256`` itself; whitespace and key order do not change it."""
    content = {k: v for k, v in meta.items() if k != "config_sha256"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def load_checkpoint(folder: str | os.PathLike[str], *, kind: str) -> Checkpoint:
    """Read and verify a checkpoint folder (each file read and hashed once).

    Refused, naming the file (and the key): a missing file, a config.json that is not strict JSON
    or holds NaN/Infinity, another kind, a config.json whose content hash differs from its
    ``config_sha256`` (it was edited), weights whose sha256 differs (changed or truncated), and
    weights that are not a readable safetensors file.
    """
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(
                str(path),
                "checkpoint file is missing",
                fix=f"pass a folder written by tumorsynth ({CONFIG} + {WEIGHTS})",
            )
    meta = _read_meta(config_path)
    if meta.get("kind") != kind:
        raise InputError(
            str(config_path), f"expected a {kind} checkpoint, found {meta.get('kind')!r}"
        )
    content_sha = config_sha256(meta)
    stored_sha = meta.get("config_sha256")
    if stored_sha is None:
        warnings.warn(
            f"{config_path}: written before config.json files carried their own hash "
            "(config_sha256); its settings cannot be verified",
            stacklevel=2,
        )
    elif content_sha != stored_sha:
        raise InputError(
            str(config_path),
            f"content sha256 {content_sha[:12]}... does not match the recorded config_sha256 "
            f"{str(stored_sha)[:12]}...; the file was edited after it was written",
            fix="restore the config.json written with these weights, or train again",
        )
    for key, expected in (("sha256", str), ("config", Mapping), ("requires", Mapping)):
        if key in meta and not isinstance(meta[key], expected):
            raise InputError(
                str(config_path),
                f"key {key!r}: expected a {'mapping' if expected is Mapping else 'string'}, "
                f"found {meta[key]!r}",
            )
    if "config" not in meta:
        raise InputError(str(config_path), "missing key 'config' (the model's settings)")
    requires = dict(meta.get("requires") or {})
    if not all(isinstance(v, str) for v in requires.values()):
        raise InputError(str(config_path), f"key 'requires': expected hashes, found {requires}")
    data = weights_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("sha256"):
        raise InputError(
            str(weights_path),
            f"sha256 {digest[:12]}... does not match the sha256 recorded in {config_path} "
            f"({str(meta.get('sha256'))[:12]}...); the weights were changed or truncated",
            fix="restore the weights written with this config.json, or train again",
        )
    try:
        state = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise InputError(
            str(weights_path), f"expected a safetensors file, found unreadable data ({exc})"
        ) from exc
    return Checkpoint(dict(meta["config"]), state, {CONFIG: content_sha, WEIGHTS: digest}, requires)


def load_pretrained_state(
    folder: str | os.PathLike[str], *, kind: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint folder: (config, state dict), after the checks of
    :func:`load_checkpoint`."""
    checkpoint = load_checkpoint(folder, kind=kind)
    return checkpoint.config, checkpoint.state


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


# -- strict JSON -----------------------------------------------------------------------------------
def _read_meta(path: Path) -> dict[str, Any]:
    try:
        # NaN/Infinity literals and numbers that overflow parse to non-finite floats, which
        # the walk below refuses by key (json.loads would otherwise accept them silently).
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(path), f"expected JSON, found unreadable text ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(str(path), f"expected a JSON object, found {type(meta).__name__}")
    bad = _non_finite_key(meta)
    if bad is not None:
        raise InputError(
            str(path),
            f"key {bad} is NaN or infinite; a checkpoint setting must be a finite number",
            fix="restore the config.json written by training",
        )
    return meta


def _non_finite_key(value: Any, prefix: str = "") -> str | None:
    """The dotted key (``config.hu_window[1]``) of the first NaN/infinite number, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(prefix or "(top level)")
    if isinstance(value, Mapping):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{prefix}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for name, item in items:
        found = _non_finite_key(item, name)
        if found is not None:
            return found
    return None


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
