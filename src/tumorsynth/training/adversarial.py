"""Train the adversarial (FreeTumor-class) generator from unlabeled healthy scans, a few annotated
tumors and a frozen segmentor. It starts from nothing: no pre-trained generator is needed.

Each step:

1. healthy crops get a tumor mask from the core (shapes and sites of the organ profile,
   :mod:`.adversarial_data`); the generator changes their intensities inside it
   (:class:`~tumorsynth.models.adversarial.TumorAdversary`);
2. the voxel-wise discriminator learns background / real tumor (crops of the annotated tumors) /
   synthetic tumor (the generated ones), on crops shifted so their host sits at the reference HU
   (it judges appearance relative to the parenchyma, not a scan's contrast phase);
3. the generator learns ``seg_weight x`` the frozen segmentor's Dice + cross-entropy on the
   synthetic crop (tumor where the mask is, organ around it: tumors a segmentor recognizes) plus
   ``adv_weight x`` the discriminator's cross-entropy towards "real tumor" on the tumor's voxels.

Every ``val_every`` steps the fixed validation crops are scored: the share of synthetic tumor
voxels the segmentor calls tumor (what the quality filter measures) and the mean change in HU.
Outputs in ``out_dir``: ``model/`` (the checkpoint for ``--generator adversarial``),
``checkpoints/last`` (the state ``--resume`` continues from), ``metrics.csv``, ``summary.json``
and ``samples.png``. Runs under torchrun with DDP like the other trainings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from tqdm import tqdm

from tumorsynth._types import derive_seed
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import ensure_writable_dir
from tumorsynth.models.adversarial import (
    REAL_TUMOR,
    SYNTHETIC_TUMOR,
    TumorAdversary,
    build_change_net,
    build_voxel_discriminator,
)
from tumorsynth.models.checkpoint import load_state_strict
from tumorsynth.models.device import pick_device
from tumorsynth.models.segmentors import load_segmentor
from tumorsynth.models.tumor_diffusion import hu_to_unit
from tumorsynth.organs import get_profile
from tumorsynth.previews import render_crop_grid, save_png
from tumorsynth.training.adversarial_config import AdversarialTrainConfig
from tumorsynth.training.adversarial_data import HealthyCrops, load_healthy_scans
from tumorsynth.training.common import (
    MetricsLog,
    bf16_autocast,
    deadline_after,
    load_schedule_state,
    warmup_cosine,
    write_json,
)
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
from tumorsynth.training.tumor_crops import CropSampler, check_crop_fits, load_tumor_scans

__all__ = ["AdversarialOutput", "train_adversarial"]

COLUMNS = (
    "step",
    "loss_g",
    "seg",
    "adv",
    "loss_d",
    "lr",
    "crops_per_s",
    "val_seg_tumor",
    "val_change_hu",
)
MODEL_DIR = "model"


@dataclass
class AdversarialOutput:
    out_dir: Path
    model_dir: Path
    steps: int
    val_seg_tumor: float
    crops_per_second: float


def train_adversarial(
    config: AdversarialTrainConfig, *, resume: bool = False, progress: bool = True
) -> AdversarialOutput:
    """Train per ``config``; the checkpoint is ``out_dir/model`` (``--checkpoint`` of the
    ``adversarial`` generator). ``resume`` continues from ``checkpoints/last`` (same settings;
    ``max_steps`` may grow); under torchrun every process trains on its own crops."""
    resumed = prepare_resume(
        config.train.out_dir,
        config.to_dict(),
        resume=resume,
        command="train-adversarial",
        resumable=GENERATOR_RESUMABLE,
    )
    device = pick_device(config.train.device)
    judge, judge_window = _segmentor(config, device)
    d = config.data
    real_scans = load_tumor_scans(d.real, d.real_label_map, [d.organ], d.min_voxels)
    check_crop_fits(real_scans, config.model)
    healthy = load_healthy_scans(d.healthy, d.healthy_label_map, d.organ)
    group = Distributed.start(device)
    out = ensure_writable_dir(config.train.out_dir) if group.writes else Path(config.train.out_dir)
    rank_seed = config.seed if group.rank == 0 else derive_seed(config.seed, "rank", group.rank)
    rng = np.random.default_rng(rank_seed)
    profile = get_profile(d.organ)
    crops = HealthyCrops(healthy, config.model, profile, d.tumor_size, rng)
    reals = CropSampler(
        real_scans, config.model, rng, jitter=d.jitter, host_reference_hu=config.model.reference_hu
    )
    noise_gen = torch.Generator().manual_seed(derive_seed(rank_seed, "adversarial noise"))
    val = HealthyCrops(
        healthy,
        config.model,
        profile,
        d.tumor_size,
        np.random.default_rng(derive_seed(config.seed, "val")),
    ).crops(d.val_crops)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        generator_net = build_change_net(config.model).to(device)
        disc = build_voxel_discriminator(config.model).to(device)
    adversary = TumorAdversary(generator_net, config.model)
    opt_g = torch.optim.Adam(generator_net.parameters(), lr=config.optim.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.optim.disc_lr, betas=(0.5, 0.999))
    sched = warmup_cosine(opt_g, config.optim.warmup_steps, config.optim.max_steps)
    step = 0
    if resumed:
        state = load_train_state(last_checkpoint(out))
        load_state_strict(generator_net, state["generator"], "generator")
        load_state_strict(disc, state["discriminator"], "discriminator")
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        load_schedule_state(sched, state["scheduler"])
        if group.rank < len(state["rng"]):
            set_numpy_rng_state(rng, state["rng"][group.rank][0])
            noise_gen.set_state(state["rng"][group.rank][1])
        step = int(state["step"])
    g_net, d_net = group.wrap(generator_net, device), group.wrap(disc, device)
    trainable = TumorAdversary(g_net, config.model).to(device)
    seg_loss = DiceCELoss(to_onehot_y=True, softmax=True)
    autocast = bf16_autocast(config.optim.amp, device)
    window = config.model.hu_window
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
    first_step, seen, start = step, 0, time.perf_counter()
    scores = {"seg_tumor": math.nan, "change_hu": math.nan}

    def judged(synthetic: torch.Tensor) -> torch.Tensor:
        lo, hi = judge_window
        return judge(((synthetic - lo) / (hi - lo)).clamp(0.0, 1.0))

    def save_last() -> None:
        states = group.gather((numpy_rng_state(rng), noise_gen.get_state()))
        if group.writes:
            save_train_state(
                last_checkpoint(out),
                {
                    "generator": generator_net.state_dict(),
                    "discriminator": disc.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": states,
                    "step": step,
                },
            )
            adversary.save_pretrained(out / MODEL_DIR)

    g_net.train()
    d_net.train()
    interrupted = False
    try:
        while step < config.optim.max_steps and not out_of_time(deadline, group.enabled, device):
            images, masks, organs, hosts = crops.crops(config.optim.batch_size)
            images, masks, organs = images.to(device), masks.to(device), organs.to(device)
            real, real_masks, _ = reals.tumor_crops(config.optim.batch_size)
            real, real_masks = real.to(device), real_masks.to(device)
            noise = adversary.noise(tuple(images.shape), [noise_gen] * images.shape[0])
            shift = _shift(hosts, config.model.reference_hu, device)
            with autocast():
                synthetic = images + trainable.change(images, masks, hosts, noise.to(device))
                # the discriminator: real tumors vs synthetic ones, relative to their hosts
                d_real = d_net(hu_to_unit(real, window))
                d_fake = d_net(hu_to_unit(synthetic.detach() + shift, window))
                loss_d = F.cross_entropy(
                    d_real.float(), (real_masks[:, 0] * REAL_TUMOR).long()
                ) + F.cross_entropy(d_fake.float(), (masks[:, 0] * SYNTHETIC_TUMOR).long())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            with autocast():
                target = (organs + masks).clamp(max=2.0)  # 0 background, 1 organ, 2 tumor
                seg = seg_loss(judged(synthetic).float(), target)
                d_on_fake = d_net(hu_to_unit(synthetic + shift, window)).float()
                voxelwise = F.cross_entropy(
                    d_on_fake, torch.full_like(masks[:, 0], REAL_TUMOR).long(), reduction="none"
                )
                adv = (voxelwise * masks[:, 0]).sum() / masks.sum().clamp(min=1.0)
                loss_g = config.optim.seg_weight * seg + config.optim.adv_weight * adv
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(generator_net.parameters(), config.optim.grad_clip)
            opt_g.step()
            sched.step()
            step += 1
            seen += images.shape[0] * group.world_size
            bar.update(1)
            row: dict[str, Any] = {}
            if step % config.train.log_every == 0 or step == config.optim.max_steps:
                row = {
                    "step": step,
                    "loss_g": float(loss_g.detach()),
                    "seg": float(seg.detach()),
                    "adv": float(adv.detach()),
                    "loss_d": float(loss_d.detach()),
                    "lr": sched.get_last_lr()[0],
                    "crops_per_s": seen / max(time.perf_counter() - start, 1e-9),
                }
                bar.set_postfix(seg=f"{row['seg']:.3f}", adv=f"{row['adv']:.3f}")
            if step % config.train.val_every == 0:
                if group.writes:
                    scores = _scores(adversary, judged, val, config.seed, device)
                    row.update({"step": step, "val_seg_tumor": scores["seg_tumor"]})
                    row["val_change_hu"] = scores["change_hu"]
                save_last()
            if row:
                log.write(row)
    except BaseException:
        interrupted = True
        raise
    finally:
        bar.close()
        if not (interrupted and group.enabled):
            save_last()
        elif group.writes:
            adversary.save_pretrained(out / MODEL_DIR)
        elapsed = time.perf_counter() - start
        if group.writes:
            scores = _scores(adversary, judged, val, config.seed, device)
            _samples_png(adversary, val, config.seed, device, out / "samples.png")
            write_json(
                out / "summary.json",
                {
                    "steps": step,
                    "steps_this_run": step - first_step,
                    "resumed_from": first_step if resumed else None,
                    "val_seg_tumor": scores["seg_tumor"],
                    "val_seg_tumor_is": "the share of synthetic tumor voxels of the fixed "
                    "validation crops that the frozen segmentor calls tumor (what the quality "
                    "filter scores)",
                    "val_change_hu": scores["change_hu"],
                    "healthy_scans": [s.case_id for s in healthy],
                    "real_tumors": len(reals.tumors),
                    "crops_per_second": seen / max(elapsed, 1e-9),
                    "minutes": elapsed / 60.0,
                    "device": str(device),
                    "processes": group.world_size,
                },
            )
        if not interrupted:
            group.finish()
    return AdversarialOutput(
        out, out / MODEL_DIR, step, scores["seg_tumor"], seen / max(elapsed, 1e-9)
    )


def _segmentor(config: AdversarialTrainConfig, device: torch.device) -> tuple[Any, Any]:
    """The frozen judge and its HU window; refuses one of another organ or spacing."""
    model, stored = load_segmentor(config.segmentor, device)
    where = str(Path(config.segmentor) / "config.json")
    if len(stored.get("organs") or ()) > 1:
        raise InputError(
            where,
            f"the judge must segment one organ (background, organ, tumor); this segmentor "
            f"segments {', '.join(stored['organs'])}",
            fix="train a segmentor with data.organ set to this run's organ alone",
        )
    if stored.get("organ") != config.data.organ:
        raise InputError(
            where,
            f"the segmentor segments {stored.get('organ')} tumors, this run learns "
            f"{config.data.organ} tumors",
            fix="train the segmentor on the organ of data.organ",
        )
    spacing = tuple(float(s) for s in stored["spacing_mm"])
    if spacing != tuple(config.model.spacing_mm):
        raise InputError(
            where,
            f"the segmentor works at {list(spacing)} mm, the generator's model.spacing_mm is "
            f"{list(config.model.spacing_mm)}",
            fix="set model.spacing_mm to the segmentor's spacing",
        )
    model.requires_grad_(False)
    return model, tuple(float(v) for v in stored["hu_window"])


def _shift(hosts: list[float], reference: float, device: torch.device) -> torch.Tensor:
    return torch.tensor([reference - h for h in hosts], device=device).view(-1, 1, 1, 1, 1)


@torch.no_grad()
def _scores(
    adversary: TumorAdversary, judged: Any, val: tuple, seed: int, device: torch.device
) -> dict[str, float]:
    """The fixed validation crops' share of tumor voxels the segmentor calls tumor, and the mean
    change inside the tumors (HU)."""
    images, masks, _, hosts = val
    images, masks = images.to(device), masks.to(device)
    gens = [torch.Generator().manual_seed(derive_seed(seed, "val", i)) for i in range(len(images))]
    synthetic = adversary.sample(images, masks, hosts, gens)
    called = judged(synthetic).argmax(1, keepdim=True) == 2
    inside = masks > 0.5
    return {
        "seg_tumor": float(called[inside].float().mean()),
        "change_hu": float((synthetic - images)[inside].mean()),
    }


@torch.no_grad()
def _samples_png(
    adversary: TumorAdversary, val: tuple, seed: int, device: torch.device, path: Path
) -> None:
    images, masks, _, hosts = val
    gens = [torch.Generator().manual_seed(derive_seed(seed, "val", i)) for i in range(len(images))]
    synthetic = adversary.sample(images.to(device), masks.to(device), hosts, gens).cpu()
    rows, outlines = [], []
    for image, mask, new in list(zip(images, masks, synthetic, strict=True))[:6]:
        z = int(torch.argmax(mask[0].sum(dim=(0, 1))))
        rows.append([image[0][:, :, z].numpy(), new[0][:, :, z].numpy()])
        outlines.append(mask[0][:, :, z].numpy() > 0.5)
    grid = render_crop_grid(
        rows, column_titles=("healthy crop", "adversarial tumor"), mask_rows=outlines
    )
    save_png(grid, path)
