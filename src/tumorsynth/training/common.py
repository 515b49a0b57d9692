"""Pieces every training loop shares: the warm-up + cosine schedule, the metrics log, and the guard
that keeps a new run from overwriting a previous one."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from monai.optimizers.lr_scheduler import WarmupCosineSchedule

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path

__all__ = [
    "MetricsLog",
    "RUN_FILES",
    "bf16_autocast",
    "deadline_after",
    "load_schedule_state",
    "refuse_previous_run",
    "warmup_cosine",
    "write_json",
]


#: What a training command writes into its ``out_dir``: any of these means a run was there.
RUN_FILES = (
    "summary.json",
    "train_config.json",
    "metrics.csv",
    "checkpoints",
    "autoencoder",
    "model",
    "tensorboard",
    "reconstructions.png",
    "samples.png",
)


def refuse_previous_run(out_dir: str | Path, *, command: str, can_resume: bool) -> None:
    """Refuse to start a new run in ``out_dir`` when it holds a previous run's files.

    Called before anything is read or written; a new run would replace that run's checkpoints
    and metrics. The message names the folder, what is in it (finished or not, its steps) and
    the fix: ``--resume`` where the command has it, else another ``train.out_dir``.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return
    state = "an unfinished training run"
    summary = out / "summary.json"
    if summary.is_file():
        try:
            steps = json.loads(summary.read_text(encoding="utf-8")).get("steps")
        except (OSError, ValueError, AttributeError):
            steps = None
        state = "a finished training run" + (f" ({steps} steps)" if steps is not None else "")
    fix = (
        "pass --resume to continue it, or choose another folder: --set train.out_dir=NEW_DIR"
        if can_resume
        else f"choose another folder: --set train.out_dir=NEW_DIR ({command} cannot resume "
        "a run), or move this one away first"
    )
    raise InputError(
        str(out),
        f"train.out_dir holds {state} ({', '.join(found)}); {command} would replace its "
        "checkpoints and metrics",
        fix=fix,
    )


def deadline_after(max_minutes: float | None) -> float:
    """``time.perf_counter()`` value at which a ``max_minutes`` budget runs out (inf: none)."""
    return time.perf_counter() + 60.0 * max_minutes if max_minutes else math.inf


def bf16_autocast(enabled: bool, device: torch.device) -> Callable[[], Any]:
    """A context factory: bf16 autocast on CUDA when ``enabled``, else nothing."""
    if enabled and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> WarmupCosineSchedule:
    """MONAI's linear warm-up, then cosine decay to 0 at ``total_steps`` (step once per step).

    The warm-up starts at ``lr / warmup_steps`` rather than MONAI's default 0, so no step is
    taken at a zero learning rate; it reaches ``lr`` at ``warmup_steps``. (The hand-written
    schedule this replaces reached it one step earlier, at ``warmup_steps - 1``: with 4 warm-up
    steps the factors are 0.25, 0.4375, 0.625, 0.8125, then 1 (it had 0.25, 0.5, 0.75, 1, 1); the
    cosine part is the same.)
    """
    return WarmupCosineSchedule(
        optimizer,
        warmup_steps=warmup_steps,
        t_total=total_steps,
        warmup_multiplier=1.0 / max(1, warmup_steps),
    )


#: What a :func:`warmup_cosine` schedule is configured with, as opposed to where it stands.
_SCHEDULE_SETTINGS = ("warmup_steps", "t_total", "cycles", "end_lr", "warmup_multiplier")


def load_schedule_state(scheduler: WarmupCosineSchedule, state: Mapping[str, Any]) -> None:
    """Continue ``scheduler`` from a checkpoint's position (its step and learning rates), with
    its own length: a resumed run may be given more ``max_steps`` than the run it continues."""
    scheduler.load_state_dict({k: v for k, v in state.items() if k not in _SCHEDULE_SETTINGS})


class MetricsLog:
    """Appends rows to ``metrics.csv`` (fixed columns, empty where a row has no value) and to
    TensorBoard when it is installed."""

    def __init__(
        self, out: Path, columns: Sequence[str], *, enabled: bool = True, resume: bool = False
    ) -> None:
        self.path = out / "metrics.csv"
        self.columns = tuple(columns)
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        if not (resume and self.path.exists()):
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # TensorBoard is optional
            self.writer = None

    def write(self, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow(
                [
                    ""
                    if row.get(c) is None
                    else (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c])
                    for c in self.columns
                ]
            )
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, row["step"])


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
