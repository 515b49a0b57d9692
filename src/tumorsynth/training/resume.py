"""What every resumable, distributable training shares: ``--resume`` (the guard, the settings
check, the state file) and torchrun DDP (the process group, the rank that writes, a deadline all
ranks agree on).

A run keeps its whole training state in ``out_dir/checkpoints/last/train_state.pt``: weights,
optimizers, schedules, the step, and the random states of its crop sampler and noise, so a run
interrupted and resumed takes the same steps as one that was not (on one CPU process; GPUs and
several processes add their own non-determinism).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path
from tumorsynth.models.device import ddp_backend
from tumorsynth.training.common import refuse_previous_run

__all__ = [
    "Distributed",
    "GENERATOR_RESUMABLE",
    "TRAIN_STATE",
    "check_resume_settings",
    "last_checkpoint",
    "load_train_state",
    "numpy_rng_state",
    "out_of_time",
    "prepare_resume",
    "save_train_state",
    "set_numpy_rng_state",
    "sigterm_as_interrupt",
]

TRAIN_STATE = "train_state.pt"
#: Settings a resumed generator training may change: how long and how it runs, not what it
#: learns from.
GENERATOR_RESUMABLE = frozenset(
    {"name", "optim.max_steps", "train.device", "train.log_every", "train.val_every",
     "train.max_minutes"}
)  # fmt: skip


def last_checkpoint(out_dir: str | Path) -> Path:
    """Where a run keeps the state it resumes from."""
    return Path(out_dir) / "checkpoints" / "last"


def prepare_resume(
    out_dir: str | Path,
    config: Mapping[str, Any],
    *,
    resume: bool,
    command: str,
    resumable: Iterable[str],
) -> bool:
    """Check ``out_dir`` before anything is read or written; True when a state to resume exists.

    Without ``resume``, a folder holding a previous run is refused. With it, a folder without a
    state starts from step 0, and one whose run used other settings (other than ``resumable``
    ones) is refused.
    """
    if not resume:
        refuse_previous_run(out_dir, command=command, can_resume=True)
        return False
    resumed = (last_checkpoint(out_dir) / TRAIN_STATE).is_file()
    if resumed:
        check_resume_settings(Path(out_dir), config, frozenset(resumable))
    return resumed


def check_resume_settings(out: Path, config: Mapping[str, Any], resumable: frozenset[str]) -> None:
    """Refuse to resume a run in ``out`` that was started with other settings (it would mix two
    runs' data or models in one checkpoint); only the ``resumable`` keys may differ."""
    path = out / "train_config.json"
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"expected the run's settings (JSON), found {exc}") from exc
    before = _flat(stored)
    now = _flat(json.loads(json.dumps(dict(config), default=str)))
    # settings both versions know (a newer tumorsynth may add some, with their old behaviour)
    changed = [
        key
        for key in sorted(set(before) & set(now))
        if key not in resumable and before[key] != now[key]
    ]
    if changed:
        details = ", ".join(f"{k}: {before[k]!r} -> {now[k]!r}" for k in changed[:6])
        raise InputError(
            str(out),
            f"--resume would continue a run made with other settings ({details}); "
            "resuming would mix two runs",
            fix="resume with the run's own config, or start the new one in another train.out_dir",
        )


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "generator_options":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def save_train_state(folder: Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (tensors, state dicts, numbers, strings) atomically to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TRAIN_STATE
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    return path


def load_train_state(folder: Path) -> dict[str, Any]:
    """The state :func:`save_train_state` wrote (plain data only: ``weights_only``)."""
    path = folder / TRAIN_STATE
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - a damaged file of any kind is one error
        raise InputError(
            str(path),
            f"expected the training state of the run to resume, found an unreadable file "
            f"({type(exc).__name__}: {exc})",
            fix="start the run again in another train.out_dir",
        ) from exc


def numpy_rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The state of a numpy generator as plain data (ints and strings)."""
    return dict(rng.bit_generator.state)


def set_numpy_rng_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    rng.bit_generator.state = dict(state)


@dataclass(frozen=True)
class Distributed:
    """The process group of a torchrun launch (WORLD_SIZE > 1), or a single process."""

    enabled: bool
    rank: int
    world_size: int

    @classmethod
    def start(cls, device: torch.device) -> Distributed:
        """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(False, 0, 1)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(ddp_backend(device))
        return cls(True, torch.distributed.get_rank(), world)

    @property
    def writes(self) -> bool:
        """Only rank 0 writes files and logs."""
        return self.rank == 0

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if not self.enabled or not any(p.requires_grad for p in module.parameters()):
            return module
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (``[value]`` in a single process)."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, value)
        return out

    def finish(self) -> None:
        """Leave the process group together: a rank that tears down its gloo connections while
        a peer still writes its report can abort ("terminate called without an active
        exception", seen once in CI), so every rank waits for the others first."""
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def out_of_time(deadline: float, distributed: bool, device: torch.device) -> bool:
    """Past the wall-clock budget; under DDP every rank agrees (or they would deadlock)."""
    late = time.perf_counter() > deadline
    if not distributed or deadline == math.inf:
        return late
    flag = torch.tensor([float(late)], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (a cluster scheduler's stop, ``kill``, torchrun ending the
    other ranks) ends a training as Ctrl-C does: it keeps its state for ``--resume``. Outside
    the main thread nothing changes (signal handlers can only be set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
