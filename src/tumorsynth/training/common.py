"""Pieces every training loop shares: device choice, warm-up + cosine schedule, the metrics log,
and the guard that keeps a new run from overwriting a previous one."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path
from tumorsynth.models.device import pick_device

__all__ = [
    "MetricsLog",
    "RUN_FILES",
    "bf16_autocast",
    "deadline_after",
    "refuse_previous_run",
    "pick_device",
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
            steps = json.loads(summary.read_text()).get("steps")
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


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up, then cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


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
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
