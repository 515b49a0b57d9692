"""Train a tumor segmentation network on real, synthetic or mixed data (CPU, one GPU, torchrun DDP).

Steps, not epochs: crops are drawn from an endless, weighted stream of cases, so "mixed 50%" means
half of the crops come from healthy scans with synthetic tumors. Checkpoints hold the frozen config
(``config.json`` + ``model.safetensors`` + sha256) and a resumable training state; the metrics log
is ``metrics.csv`` (plus TensorBoard when it is installed).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from tqdm import tqdm

from tumorsynth import __version__
from tumorsynth.io.atomic import ensure_writable_dir
from tumorsynth.models.checkpoint import load_state_strict
from tumorsynth.models.device import pick_device
from tumorsynth.models.segmentors import (
    SegmentorConfig,
    build_segmentor,
    count_parameters,
    load_segmentor,
    save_segmentor,
)
from tumorsynth.training.common import (
    MetricsLog,
    bf16_autocast,
    load_schedule_state,
    warmup_cosine,
    write_json,
)
from tumorsynth.training.config import TrainConfig
from tumorsynth.training.data import (
    build_datasets,
    check_training_data,
    median_spacing,
    split_cases,
)
from tumorsynth.training.resume import (
    Distributed,
    load_train_state,
    out_of_time,
    prepare_resume,
    save_train_state,
)
from tumorsynth.training.resume import check_resume_settings as resume_settings

__all__ = [
    "TrainOutput",
    "check_resume_settings",
    "make_loader",
    "segmentor_checkpoint_config",
    "train_segmentation",
]

METRIC_COLUMNS = (
    "step",
    "loss",
    "lr",
    "crops_per_s",
    "data_fraction",
    "gpu_mem_gb",
    "val_tumor_dsc",
    "val_organ_dsc",
)


@dataclass
class TrainOutput:
    out_dir: Path
    steps: int
    best_val_tumor_dsc: float
    best_step: int
    crops_per_second: float
    data_time_fraction: float


def segmentor_checkpoint_config(
    config: TrainConfig, model_config: SegmentorConfig, step: int
) -> dict[str, Any]:
    """What a prediction needs to reproduce the training preprocessing, frozen with the weights
    (``classes``: output label name -> network class; ``organ``: the first of ``organs``)."""
    return {
        "model": model_config.to_dict(),
        "classes": config.classes,
        "organ": config.data.organs[0],
        "organs": list(config.data.organs),
        "spacing_mm": list(model_config.spacing_mm),
        "hu_window": list(config.data.hu_window),
        "patch_size": list(model_config.patch_size),
        "step": step,
        "train_config": config.to_dict(),
        "tumorsynth_version": __version__,
    }


def train_segmentation(
    config: TrainConfig, *, resume: bool = False, progress: bool = True
) -> TrainOutput:
    """Train per ``config``; resume from ``out_dir/checkpoints/last`` when asked.

    Without ``resume``, an ``out_dir`` that holds a previous run is refused before anything is
    read or written; with it, a folder without a checkpoint starts from step 0, and one whose
    run used other settings is refused (:func:`check_resume_settings`). The data are checked
    (cases found, patch size against the resampled images) before ``out_dir`` is created.
    """
    ckpt_dir = Path(config.train.out_dir) / "checkpoints"
    # every rank checks before the process group forms, so no rank has written yet
    resumed = prepare_resume(
        config.train.out_dir,
        config.to_dict(),
        resume=resume,
        command="train",
        resumable=RESUMABLE_CHANGES,
    )
    device = pick_device(config.train.device)
    group = Distributed.start(device)
    distributed, rank = group.enabled, group.rank
    if device.type == "cuda":
        torch.cuda.set_device(device)

    train_items, val_items = split_cases(config)
    spacing = (
        tuple(config.data.spacing_mm) if config.data.spacing_mm else median_spacing(train_items)
    )
    check_training_data(config, train_items, spacing)
    out = ensure_writable_dir(config.train.out_dir) if rank == 0 else Path(config.train.out_dir)
    model_config = dataclasses.replace(
        config.model, spacing_mm=(float(spacing[0]), float(spacing[1]), float(spacing[2]))
    )
    dataset, weights, val_ds = build_datasets(config, train_items, val_items, spacing)
    loader = make_loader(config, dataset, weights, rank=rank, pin_memory=device.type == "cuda")

    with torch.random.fork_rng(devices=[]):  # seeded initialization without touching global state
        torch.manual_seed(config.seed)
        model = group.wrap(build_segmentor(model_config).to(device), device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
    )
    scheduler = warmup_cosine(optimizer, config.optim.warmup_steps, config.optim.max_steps)
    autocast = bf16_autocast(config.optim.amp, device)

    step, best, best_step = 0, -1.0, 0
    if resumed:
        step, best, best_step = _resume(ckpt_dir / "last", model, optimizer, scheduler)
    if rank == 0:
        write_json(out / "train_config.json", config.to_dict())
    log = MetricsLog(out, METRIC_COLUMNS, enabled=rank == 0, resume=resumed)
    bar = tqdm(
        total=config.optim.max_steps,
        initial=step,
        disable=not progress or rank != 0,
        desc=config.name,
        unit="step",
        dynamic_ncols=True,
    )
    batches = iter(loader)
    data_time = compute_time = 0.0
    crops = 0
    window_start = time.perf_counter()
    deadline = (
        window_start + 60.0 * config.train.max_minutes if config.train.max_minutes else math.inf
    )
    stop_at = config.optim.max_steps
    model.train()

    def save_last() -> None:
        _save_state(
            ckpt_dir / "last",
            model,
            optimizer,
            scheduler,
            step,
            best,
            best_step,
            segmentor_checkpoint_config(config, model_config, step),
        )

    try:
        while step < stop_at:
            t0 = time.perf_counter()
            batch = next(batches)
            image = batch["image"].to(device, non_blocking=True)
            label = batch["label"].to(device, non_blocking=True)
            t1 = time.perf_counter()
            with autocast():
                output = model(image)
                loss = _loss(loss_fn, output, label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t2 = time.perf_counter()
            data_time += t1 - t0
            compute_time += t2 - t1
            crops += image.shape[0]
            step += 1
            bar.update(1)
            if stop_at == config.optim.max_steps and out_of_time(deadline, distributed, device):
                stop_at = step  # out of time: validate, save and stop at this step
            if step % config.train.log_every == 0 or step == stop_at:
                elapsed = time.perf_counter() - window_start
                row = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "lr": scheduler.get_last_lr()[0],
                    "crops_per_s": crops / max(elapsed, 1e-9),
                    "data_fraction": data_time / max(data_time + compute_time, 1e-9),
                }
                if device.type == "cuda":
                    row["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                log.write(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", crops_s=f"{row['crops_per_s']:.1f}")
            if val_ds is not None and (step % config.train.val_every == 0 or step == stop_at):
                dsc = _validate(model, val_ds, config, model_config, device, autocast)
                log.write(
                    {"step": step, "val_tumor_dsc": dsc["tumor"], "val_organ_dsc": dsc["organ"]}
                )
                if rank == 0 and dsc["tumor"] > best:
                    best, best_step = dsc["tumor"], step
                    save_segmentor(
                        model,
                        segmentor_checkpoint_config(config, model_config, step),
                        ckpt_dir / "best",
                    )
                model.train()
            if rank == 0 and (step % config.train.checkpoint_every == 0 or step == stop_at):
                save_last()
    except KeyboardInterrupt:
        # Keep what was trained: `--resume` continues from this step.
        if rank == 0 and step > 0:
            save_last()
        raise
    bar.close()
    total = data_time + compute_time
    result = TrainOutput(
        out,
        step,
        best,
        best_step,
        crops / max(time.perf_counter() - window_start, 1e-9),
        data_time / max(total, 1e-9),
    )
    if rank == 0:
        summary = dataclasses.asdict(result) | {
            "parameters": count_parameters(model),
            "device": str(device),
        }
        summary["out_dir"] = str(out)
        write_json(out / "summary.json", summary)
    group.finish()
    return result


#: Settings a resumed run may change: how long and how it runs, not what it learns from.
RESUMABLE_CHANGES = frozenset(
    {
        "name",
        "optim.max_steps",
        "data.num_workers",
        "data.cache",
        "train.device",
        "train.log_every",
        "train.val_every",
        "train.checkpoint_every",
        "train.max_minutes",
        "train.max_val_cases",
    }
)


def check_resume_settings(out: Path, config: TrainConfig) -> None:
    """Refuse to resume a run in ``out`` that was started with other settings (it would mix two
    runs' data or models in one checkpoint); only :data:`RESUMABLE_CHANGES` may differ."""
    resume_settings(out, config.to_dict(), RESUMABLE_CHANGES)


def make_loader(
    config: TrainConfig,
    dataset: Any,
    weights: list[float],
    *,
    rank: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless loader: cases drawn with replacement by weight, ``samples_per_case`` crops each,
    so a batch holds ``optim.batch_size`` crops."""
    generator = torch.Generator().manual_seed(config.seed + rank)
    sampler = torch.utils.data.WeightedRandomSampler(
        weights, num_samples=10**8, replacement=True, generator=generator
    )
    cases_per_batch = max(1, config.optim.batch_size // config.data.samples_per_case)
    return DataLoader(
        dataset,
        batch_size=cases_per_batch,
        sampler=sampler,
        num_workers=config.data.num_workers,
        persistent_workers=config.data.num_workers > 0,
        pin_memory=pin_memory,
    )


def _loss(loss_fn: DiceCELoss, output: Any, label: torch.Tensor) -> torch.Tensor:
    if isinstance(output, torch.Tensor) and output.dim() == label.dim() + 1:  # deep supervision
        heads = torch.unbind(output, dim=1)
        weights = [0.5**i for i in range(len(heads))]
        return sum(
            w * loss_fn(h.float(), label) for w, h in zip(weights, heads, strict=True)
        ) / sum(weights)
    return loss_fn(output.float(), label)


@torch.no_grad()
def _validate(
    model: torch.nn.Module,
    val_ds: Any,
    config: TrainConfig,
    model_config: SegmentorConfig,
    device: torch.device,
    autocast: Any,
) -> dict[str, float]:
    """Mean DSC of organ and tumor over validation volumes (sliding window, Gaussian blending):
    per organ class and per tumor class present in the case (ground truth or prediction); a case
    without any tumor counts for the tumor mean only when no tumor is predicted either (1.0)."""
    model.eval()
    organ: list[float] = []
    tumor: list[float] = []
    organ_classes = [c for name, c in config.classes.items() if c and not name.endswith("_tumor")]
    tumor_classes = [c for name, c in config.classes.items() if name.endswith("_tumor")]
    for index in range(min(len(val_ds), config.train.max_val_cases)):
        item = val_ds[index]
        image = torch.as_tensor(item["image"])[None].to(device)
        label = torch.as_tensor(item["label"])[None].to(device)
        with autocast():
            logits = sliding_window_inference(
                image,
                model_config.patch_size,
                4,
                model,
                overlap=config.train.sw_overlap,
                mode="gaussian",
            )
        pred = logits.argmax(1, keepdim=True)  # type: ignore[union-attr]
        organ += _class_dice(pred, label, organ_classes)
        scores = _class_dice(pred, label, tumor_classes)
        tumor += scores if scores else [1.0]
    return {
        "organ": float(np.mean(organ)) if organ else math.nan,
        "tumor": float(np.mean(tumor)) if tumor else math.nan,
    }


def _class_dice(pred: torch.Tensor, label: torch.Tensor, classes: list[int]) -> list[float]:
    """DSC of each of ``classes`` that the ground truth or the prediction holds."""
    scores = []
    for cls in classes:
        p, g = pred == cls, label == cls
        denom = p.sum() + g.sum()
        if denom > 0:
            scores.append(float(2 * (p & g).sum() / denom))
    return scores


def _save_state(
    folder: Path,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    step: int,
    best: float,
    best_step: int,
    config: dict[str, Any],
) -> None:
    save_segmentor(model, config, folder)
    save_train_state(
        folder,
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "best": best,
            "best_step": best_step,
        },
    )


def _resume(
    folder: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any
) -> tuple[int, float, int]:
    saved, _ = load_segmentor(folder, "cpu")
    module = model.module if hasattr(model, "module") else model
    load_state_strict(module, saved.state_dict(), str(folder))  # type: ignore[arg-type]
    train_state = load_train_state(folder)
    optimizer.load_state_dict(train_state["optimizer"])
    load_schedule_state(scheduler, train_state["scheduler"])
    return int(train_state["step"]), float(train_state["best"]), int(train_state["best_step"])
