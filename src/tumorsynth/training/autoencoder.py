"""Train the VQ autoencoder of the learned generator on CT crops (no labels needed).

Loss: L1 reconstruction + the vector-quantization (commitment) loss + ``adv_weight`` x a
least-squares patch-adversarial loss from ``adv_start`` on (MONAI's PatchDiscriminator and
PatchAdversarialLoss). No perceptual loss: the published ones need downloaded weights.

Held-out scans (``data.val_fraction``) give fixed, seeded crops scored by PSNR and SSIM (MONAI
metrics, on the [-1, 1] window scale) at every validation and at the end; ``reconstructions.png``
shows originals beside reconstructions.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss
from monai.metrics import PSNRMetric, SSIMMetric
from tqdm import tqdm

from tumorsynth._types import derive_seed
from tumorsynth.io.atomic import ensure_writable_dir
from tumorsynth.models.device import pick_device
from tumorsynth.models.tumor_diffusion import (
    build_autoencoder,
    build_discriminator,
    hu_to_unit,
    save_autoencoder,
    unit_to_hu,
)
from tumorsynth.previews import render_crop_grid, save_png
from tumorsynth.training.common import (
    MetricsLog,
    bf16_autocast,
    deadline_after,
    refuse_previous_run,
    warmup_cosine,
    write_json,
)
from tumorsynth.training.generative_config import AutoencoderTrainConfig
from tumorsynth.training.tumor_crops import (
    CropSampler,
    Scan,
    check_crop_fits,
    load_scan,
    scan_files,
)

__all__ = ["AutoencoderOutput", "reconstruction_scores", "train_autoencoder"]

COLUMNS = (
    "step",
    "loss",
    "l1",
    "quant",
    "adv",
    "disc",
    "lr",
    "crops_per_s",
    "val_psnr",
    "val_ssim",
)


@dataclass
class AutoencoderOutput:
    out_dir: Path
    steps: int
    val_psnr: float
    val_ssim: float
    crops_per_second: float


def train_autoencoder(
    config: AutoencoderTrainConfig, *, progress: bool = True
) -> AutoencoderOutput:
    """Train per ``config``; writes ``out_dir/autoencoder`` (the checkpoint a denoiser uses),
    ``metrics.csv``, ``summary.json`` and ``reconstructions.png``. An ``out_dir`` holding a
    previous run is refused before anything is read or written (there is no resume yet)."""
    refuse_previous_run(config.train.out_dir, command="train-autoencoder", can_resume=False)
    device = pick_device(config.train.device)
    rng = np.random.default_rng(config.seed)
    train_scans, val_scans = _split_scans(config)  # bad data fails before any output exists
    check_crop_fits(train_scans + val_scans, config.model)
    out = ensure_writable_dir(config.train.out_dir)
    sampler = CropSampler(train_scans, config.model, rng)
    val_crops = _fixed_crops(config, val_scans or train_scans)
    window = config.model.hu_window

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_autoencoder(config.model).to(device)
        disc = build_discriminator(config.model).to(device)
    opt_g = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.optim.disc_lr)
    sched = warmup_cosine(opt_g, config.optim.warmup_steps, config.optim.max_steps)
    adv_loss = PatchAdversarialLoss(criterion="least_squares")
    autocast = bf16_autocast(config.optim.amp, device)
    write_json(out / "train_config.json", config.to_dict())
    log = MetricsLog(out, COLUMNS)
    deadline = deadline_after(config.train.max_minutes)
    bar = tqdm(total=config.optim.max_steps, disable=not progress, desc=config.name, unit="step")
    scores = {"psnr": math.nan, "ssim": math.nan}
    step, crops, start = 0, 0, time.perf_counter()
    model.train()
    try:
        while step < config.optim.max_steps and time.perf_counter() < deadline:
            batch = hu_to_unit(sampler.ct_crops(config.optim.batch_size), window).to(device)
            adversarial = step >= config.optim.adv_start and config.optim.adv_weight > 0
            with autocast():
                recon, quant_loss = model(batch)
                l1 = F.l1_loss(recon.float(), batch)
                loss = l1 + quant_loss.float()
                g_adv = torch.zeros((), device=device)
                if adversarial:
                    g_adv = adv_loss(disc(recon)[-1], target_is_real=True, for_discriminator=False)
                    loss = loss + config.optim.adv_weight * g_adv
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            opt_g.step()
            sched.step()
            d_loss = torch.zeros((), device=device)
            if adversarial:
                with autocast():
                    fake = adv_loss(
                        disc(recon.detach())[-1], target_is_real=False, for_discriminator=True
                    )
                    real = adv_loss(disc(batch)[-1], target_is_real=True, for_discriminator=True)
                    d_loss = 0.5 * (fake + real)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            step += 1
            crops += batch.shape[0]
            bar.update(1)
            row: dict[str, Any] = {}
            if step % config.train.log_every == 0 or step == config.optim.max_steps:
                row = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "l1": float(l1.detach()),
                    "quant": float(quant_loss.detach()),
                    "adv": float(g_adv.detach()),
                    "disc": float(d_loss.detach()),
                    "lr": sched.get_last_lr()[0],
                    "crops_per_s": crops / max(time.perf_counter() - start, 1e-9),
                }
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if step % config.train.val_every == 0:
                scores = reconstruction_scores(model, val_crops, window, device)
                row.update({"step": step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"]})
                save_autoencoder(model, config.model, out / "autoencoder")
            if row:
                log.write(row)
    finally:  # an interrupt still leaves a usable checkpoint and report
        bar.close()
        save_autoencoder(model, config.model, out / "autoencoder")
        scores = reconstruction_scores(model, val_crops, window, device)
        _reconstruction_png(model, val_crops, window, device, out / "reconstructions.png")
        elapsed = time.perf_counter() - start
        summary = {
            "steps": step,
            "val_psnr_db": scores["psnr"],
            "val_ssim": scores["ssim"],
            "val_crops": int(val_crops.shape[0]),
            "val_scans": [s.case_id for s in val_scans] or "none (crops of training scans)",
            "crops_per_second": crops / max(elapsed, 1e-9),
            "minutes": elapsed / 60.0,
            "device": str(device),
        }
        write_json(out / "summary.json", summary)
    return AutoencoderOutput(out, step, scores["psnr"], scores["ssim"], crops / max(elapsed, 1e-9))


@torch.no_grad()
def reconstruction_scores(
    model: torch.nn.Module,
    crops_hu: torch.Tensor,
    window: tuple[float, float],
    device: torch.device,
) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of reconstructions on the [-1, 1] window scale."""
    was_training = model.training
    model.eval()
    psnr, ssim = PSNRMetric(max_val=2.0), SSIMMetric(spatial_dims=3, data_range=2.0, win_size=7)
    for crop in crops_hu:
        x = hu_to_unit(crop[None].to(device), window)
        recon, _ = model(x)
        recon = recon.float().clamp(-1.0, 1.0)
        psnr(recon, x)
        ssim(recon, x)
    model.train(was_training)
    return {
        "psnr": float(psnr.aggregate().item()),  # type: ignore[union-attr]
        "ssim": float(ssim.aggregate().item()),  # type: ignore[union-attr]
    }


def _split_scans(config: AutoencoderTrainConfig) -> tuple[list[Scan], list[Scan]]:
    files = scan_files(config.data.images)
    # Keyed by the path below the scans' common folder, so the split is the same wherever the
    # data lives (an absolute path made it depend on the machine and the temporary folder).
    resolved = [Path(f).resolve() for f in files]
    root = os.path.commonpath([str(p.parent) for p in resolved]) if resolved else "/"
    order = [
        f
        for _, f in sorted(
            zip(resolved, files),
            key=lambda pair: derive_seed(config.seed, pair[0].relative_to(root).as_posix()),
        )
    ]
    n_val = int(round(config.data.val_fraction * len(order))) if len(order) > 1 else 0

    def load(path: Path) -> Scan:
        return load_scan(path, foreground_hu=config.data.foreground_hu)

    return [load(p) for p in order[n_val:]], [load(p) for p in order[:n_val]]


def _fixed_crops(config: AutoencoderTrainConfig, scans: list[Scan]) -> torch.Tensor:
    """The same validation crops at every evaluation (their own seeded generator)."""
    rng = np.random.default_rng(derive_seed(config.seed, "validation crops"))
    sampler = CropSampler(scans, config.model, rng)
    return sampler.ct_crops(max(1, config.data.val_crops * len(scans)))


@torch.no_grad()
def _reconstruction_png(
    model: torch.nn.Module,
    crops_hu: torch.Tensor,
    window: tuple[float, float],
    device: torch.device,
    path: Path,
) -> None:
    model.eval()
    rows = []
    for crop in crops_hu[:6]:
        recon, _ = model(hu_to_unit(crop[None].to(device), window))
        recon_hu = unit_to_hu(recon.float(), window)[0, 0].cpu().numpy()
        original = crop[0].numpy()
        mid = original.shape[2] // 2
        rows.append([original[:, :, mid], recon_hu[:, :, mid]])
    save_png(render_crop_grid(rows, column_titles=("original", "reconstruction")), path)
