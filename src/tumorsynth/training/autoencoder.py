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
from tumorsynth.models.checkpoint import load_state_strict
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
    load_schedule_state,
    warmup_cosine,
    write_json,
)
from tumorsynth.training.generative_config import AutoencoderTrainConfig
from tumorsynth.training.resume import (
    GENERATOR_RESUMABLE,
    Distributed,
    last_checkpoint,
    load_train_state,
    numpy_rng_state,
    out_of_time,
    prepare_resume,
    save_train_state,
    set_numpy_rng_state,
)
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
    config: AutoencoderTrainConfig, *, resume: bool = False, progress: bool = True
) -> AutoencoderOutput:
    """Train per ``config``; writes ``out_dir/autoencoder`` (the checkpoint a denoiser uses),
    ``metrics.csv``, ``summary.json``, ``reconstructions.png`` and the state ``--resume``
    continues from (``checkpoints/last``).

    Without ``resume`` an ``out_dir`` holding a previous run is refused before anything is read
    or written; with it the run continues from its last state (same settings; ``max_steps`` may
    grow). Under torchrun every process trains on its own crops (DDP, gloo on CPU); rank 0
    writes.
    """
    resumed = prepare_resume(
        config.train.out_dir,
        config.to_dict(),
        resume=resume,
        command="train-autoencoder",
        resumable=GENERATOR_RESUMABLE,
    )
    device = pick_device(config.train.device)
    train_scans, val_scans = _split_scans(config)  # bad data fails before any output exists
    check_crop_fits(train_scans + val_scans, config.model)
    group = Distributed.start(device)
    out = ensure_writable_dir(config.train.out_dir) if group.writes else Path(config.train.out_dir)
    rng = np.random.default_rng(
        config.seed if group.rank == 0 else derive_seed(config.seed, "rank", group.rank)
    )
    sampler = CropSampler(train_scans, config.model, rng)
    val_crops = _fixed_crops(config, val_scans or train_scans)
    window = config.model.hu_window

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = build_autoencoder(config.model).to(device)
        disc_net = build_discriminator(config.model).to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=config.optim.lr)
    opt_d = torch.optim.Adam(disc_net.parameters(), lr=config.optim.disc_lr)
    sched = warmup_cosine(opt_g, config.optim.warmup_steps, config.optim.max_steps)
    step = 0
    if resumed:
        state = load_train_state(last_checkpoint(out))
        load_state_strict(net, state["autoencoder"], "autoencoder")
        load_state_strict(disc_net, state["discriminator"], "discriminator")
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        load_schedule_state(sched, state["scheduler"])
        if group.rank < len(state["rng"]):  # a rank the run did not have starts afresh
            set_numpy_rng_state(rng, state["rng"][group.rank])
        step = int(state["step"])
    model, disc = group.wrap(net, device), group.wrap(disc_net, device)
    adv_loss = PatchAdversarialLoss(criterion="least_squares")
    autocast = bf16_autocast(config.optim.amp, device)
    if group.writes:
        write_json(out / "train_config.json", config.to_dict())
    log = MetricsLog(out, COLUMNS, enabled=group.writes, resume=resumed)
    deadline = deadline_after(config.train.max_minutes)
    bar = tqdm(
        total=config.optim.max_steps,
        initial=step,
        disable=not progress or not group.writes,
        desc=config.name,
        unit="step",
    )
    scores = {"psnr": math.nan, "ssim": math.nan}
    first_step, crops, start = step, 0, time.perf_counter()

    def save_last() -> None:
        states = group.gather(numpy_rng_state(rng))
        if group.writes:
            save_train_state(
                last_checkpoint(out),
                {
                    "autoencoder": net.state_dict(),
                    "discriminator": disc_net.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": states,
                    "step": step,
                },
            )
            save_autoencoder(net, config.model, out / "autoencoder")

    model.train()
    interrupted = False
    try:
        while step < config.optim.max_steps and not out_of_time(deadline, group.enabled, device):
            batch = hu_to_unit(sampler.ct_crops(config.optim.batch_size), window).to(device)
            adversarial = step >= config.optim.adv_start and config.optim.adv_weight > 0
            with autocast():
                recon, quant_loss = model(batch)
                l1 = F.l1_loss(recon.float(), batch)
                loss = l1 + quant_loss.float()
                g_adv = torch.zeros((), device=device)
                if adversarial:
                    g_adv = adv_loss(
                        disc_net(recon)[-1], target_is_real=True, for_discriminator=False
                    )
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
            crops += batch.shape[0] * group.world_size
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
                # every rank scores (MONAI's metrics gather across the process group)
                scores = reconstruction_scores(net, val_crops, window, device)
                row.update({"step": step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"]})
                save_last()
            if row:
                log.write(row)
    except BaseException:
        interrupted = True  # another rank may be gone: no collective call from here on
        raise
    finally:  # an interrupt still leaves a usable checkpoint, the state to resume and a report
        bar.close()
        if not (interrupted and group.enabled):  # no collective while other ranks may be gone
            save_last()
        elif group.writes:
            save_autoencoder(net, config.model, out / "autoencoder")
        elapsed = time.perf_counter() - start
        if not (interrupted and group.enabled):
            scores = reconstruction_scores(net, val_crops, window, device)
        if group.writes:
            _reconstruction_png(net, val_crops, window, device, out / "reconstructions.png")
            summary = {
                "steps": step,
                "steps_this_run": step - first_step,
                "resumed_from": first_step if resumed else None,
                "val_psnr_db": scores["psnr"],
                "val_ssim": scores["ssim"],
                "val_crops": int(val_crops.shape[0]),
                "val_scans": [s.case_id for s in val_scans] or "none (crops of training scans)",
                "crops_per_second": crops / max(elapsed, 1e-9),
                "minutes": elapsed / 60.0,
                "device": str(device),
                "processes": group.world_size,
            }
            write_json(out / "summary.json", summary)
        if not interrupted:
            group.finish()
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
