"""Train the mask-conditioned latent denoiser on annotated tumors (one CT can be enough).

Each step takes crops around real tumors (jittered, zoomed, flipped), encodes them with the frozen
autoencoder, noises the latent at random DDPM timesteps, and trains the denoiser to predict the
noise from ``[noisy latent, latent of the crop with the tumor zeroed, mask on the latent grid]``
and the tumor's size class (MONAI's LatentDiffusionInferer, concat mode). An exponential moving
average of the weights is kept and is what the checkpoint holds.

Outputs in ``out_dir``: ``model/`` (the generator checkpoint: autoencoder + EMA denoiser),
``metrics.csv``, ``summary.json`` and ``samples.png`` (real crops beside tumors sampled into the
same masks with the early-tumor step count).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from tumorsynth._types import derive_seed
from tumorsynth.io.atomic import ensure_writable_dir
from tumorsynth.models.checkpoint import load_state_strict
from tumorsynth.models.device import pick_device
from tumorsynth.models.tumor_diffusion import (
    EARLY,
    LARGER,
    TumorDiffusion,
    build_denoiser,
    hu_to_unit,
    load_autoencoder,
    size_class_of,
    train_scheduler,
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
from tumorsynth.training.generative_config import DiffusionTrainConfig
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
    check_crop_fits,
    load_tumor_scans,
    trained_enhancement,
)

__all__ = ["DiffusionOutput", "train_diffusion"]

COLUMNS = ("step", "loss", "lr", "crops_per_s", "val_loss")
#: Where the generator checkpoint goes inside ``out_dir``.
MODEL_DIR = "model"


@dataclass
class DiffusionOutput:
    out_dir: Path
    model_dir: Path
    steps: int
    first_loss: float
    last_loss: float
    crops_per_second: float
    tumors_per_class: dict[str, int]


def train_diffusion(
    config: DiffusionTrainConfig, *, resume: bool = False, progress: bool = True
) -> DiffusionOutput:
    """Train per ``config``; the checkpoint is ``out_dir/model`` (``--checkpoint`` for the
    ``diffusion`` generator), the state ``--resume`` continues from ``checkpoints/last``.
    ``resume`` and torchrun work as in :func:`~tumorsynth.training.autoencoder.train_autoencoder`
    (the EMA weights and the noise generator's state are resumed too)."""
    resumed = prepare_resume(
        config.train.out_dir,
        config.to_dict(),
        resume=resume,
        command="train-diffusion",
        resumable=GENERATOR_RESUMABLE,
    )
    device = pick_device(config.train.device)
    autoencoder, ae_config = load_autoencoder(config.autoencoder)
    autoencoder.to(device).requires_grad_(False)
    config.model.validate(ae_config.latent_size, f"{config.name}: model")
    d = config.data
    scans = load_tumor_scans(d.cases, d.label_map, d.organs, d.min_voxels)
    check_crop_fits(scans, ae_config)
    group = Distributed.start(device)
    # after the inputs proved usable
    out = ensure_writable_dir(config.train.out_dir) if group.writes else Path(config.train.out_dir)
    rank_seed = config.seed if group.rank == 0 else derive_seed(config.seed, "rank", group.rank)
    rng = np.random.default_rng(rank_seed)
    sampler = CropSampler(
        scans,
        ae_config,
        rng,
        jitter=d.jitter,
        scale_range=d.scale_range,
        host_reference_hu=_reference(config),
        early_from_larger=d.early_from_larger,
    )
    counts = {"early": 0, "larger": 0}
    for _, tumor in sampler.tumors:
        counts["early" if size_class_of(tumor.diameter_mm) == EARLY else "larger"] += 1
    # larger tumors zoomed out to early size train the early class when the data have none
    derived = counts["larger"] > 0 and d.early_from_larger > 0
    trained = tuple(
        c for c, n in ((EARLY, counts["early"] or derived), (LARGER, counts["larger"])) if n
    )
    if len(trained) < 2 and group.writes:
        warnings.warn(
            f"only {'early' if trained == (EARLY,) else 'larger'} tumors to train on "
            f"({counts}); the other size class will be sampled with this one's embedding",
            stacklevel=2,
        )
    noise_gen = torch.Generator().manual_seed(derive_seed(rank_seed, "diffusion noise"))
    val_crops = _fixed_tumor_crops(config, scans, ae_config)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        denoiser = build_denoiser(config.model, ae_config.embedding_dim).to(device)
    model = TumorDiffusion(
        autoencoder,
        ae_config,
        denoiser,
        config.model,
        trained=trained,
        trained_enhancement=trained_enhancement(scans),
    )
    model.scale_factor = _scale_factor(model, val_crops[0], device)
    ema = AveragedModel(denoiser, multi_avg_fn=get_ema_multi_avg_fn(config.optim.ema_decay))
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=config.optim.lr)
    lr_sched = warmup_cosine(optimizer, config.optim.warmup_steps, config.optim.max_steps)
    step = 0
    first_loss = smoothed = math.nan
    if resumed:
        state = load_train_state(last_checkpoint(out))
        load_state_strict(denoiser, state["denoiser"], "denoiser")
        load_state_strict(ema, state["ema"], "ema")
        optimizer.load_state_dict(state["optimizer"])
        load_schedule_state(lr_sched, state["scheduler"])
        if group.rank < len(state["rng"]):  # a rank the run did not have starts afresh
            set_numpy_rng_state(rng, state["rng"][group.rank][0])
            noise_gen.set_state(state["rng"][group.rank][1])
        step = int(state["step"])
        model.scale_factor = float(state["scale_factor"])
        first_loss, smoothed = float(state["first_loss"]), float(state["smoothed_loss"])
    net = group.wrap(denoiser, device)
    inferer = model.inferer(train_scheduler(config.model))
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
    first_step, crops, start = step, 0, time.perf_counter()
    last_loss = smoothed

    def loss_on(
        batch: tuple[torch.Tensor, torch.Tensor, list[int]],
        gen: torch.Generator,
        network: torch.nn.Module = net,
    ) -> Any:
        images, masks, classes = batch
        x = hu_to_unit(images.to(device), ae_config.hu_window)
        masks = masks.to(device)
        labels = torch.as_tensor(classes, device=device)
        noise = torch.randn(model.latent_shape(x.shape[0]), generator=gen).to(device)
        t = torch.randint(0, config.model.num_train_timesteps, (x.shape[0],), generator=gen)
        with torch.no_grad():
            cond = model.condition(x, masks)
        with autocast():
            pred = inferer(
                inputs=x,
                autoencoder_model=autoencoder,
                diffusion_model=partial(network, class_labels=labels),  # type: ignore[arg-type]
                noise=noise,
                timesteps=t.to(device),
                condition=cond,
                mode="concat",
            )
        return F.mse_loss(pred.float(), noise)

    def val_loss() -> float:
        return _val_loss(partial(loss_on, network=denoiser), val_crops, config.seed)

    def save_last() -> None:
        states = group.gather((numpy_rng_state(rng), noise_gen.get_state()))
        if group.writes:
            save_train_state(
                last_checkpoint(out),
                {
                    "denoiser": denoiser.state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": lr_sched.state_dict(),
                    "rng": states,
                    "step": step,
                    "scale_factor": model.scale_factor,
                    "first_loss": first_loss,
                    "smoothed_loss": smoothed,
                },
            )
            _save(model, ema, out, config, counts)

    net.train()
    interrupted = False
    try:
        while step < config.optim.max_steps and not out_of_time(deadline, group.enabled, device):
            loss = loss_on(sampler.tumor_crops(config.optim.batch_size), noise_gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(denoiser.parameters(), config.optim.grad_clip)
            optimizer.step()
            lr_sched.step()
            ema.update_parameters(denoiser)
            value = float(loss.detach())
            smoothed = value if math.isnan(smoothed) else 0.95 * smoothed + 0.05 * value
            if step == 0:
                first_loss = value
            last_loss = smoothed
            step += 1
            crops += config.optim.batch_size * group.world_size
            bar.update(1)
            row: dict[str, Any] = {}
            if step % config.train.log_every == 0 or step == config.optim.max_steps:
                row = {
                    "step": step,
                    "loss": value,
                    "lr": lr_sched.get_last_lr()[0],
                    "crops_per_s": crops / max(time.perf_counter() - start, 1e-9),
                }
                bar.set_postfix(loss=f"{smoothed:.4f}")
            if step % config.train.val_every == 0:
                if group.writes:
                    row.update({"step": step, "val_loss": val_loss()})
                save_last()
            if row:
                log.write(row)
    except BaseException:
        interrupted = True  # another rank may be gone: no collective call from here on
        raise
    finally:  # an interrupt still leaves a usable checkpoint and the state to resume
        bar.close()
        if not (interrupted and group.enabled):
            save_last()
        elif group.writes:
            _save(model, ema, out, config, counts)
        elapsed = time.perf_counter() - start
        model_dir = out / MODEL_DIR
        if group.writes:
            ema_model = TumorDiffusion.from_pretrained(model_dir, device=device)
            _samples_png(ema_model, val_crops, config.seed, out / "samples.png")
            write_json(
                out / "summary.json",
                {
                    "steps": step,
                    "steps_this_run": step - first_step,
                    "resumed_from": first_step if resumed else None,
                    "first_loss": first_loss,
                    "last_loss_smoothed": last_loss,
                    "val_loss": val_loss() if step else math.nan,
                    "val_loss_on": "fixed crops of the training tumors with fixed noise and "
                    "timesteps (a denoising loss that can be compared across steps, not a "
                    "held-out score)",
                    "tumors_per_class": counts,
                    "scale_factor": model.scale_factor,
                    "crops_per_second": crops / max(elapsed, 1e-9),
                    "minutes": elapsed / 60.0,
                    "device": str(device),
                    "processes": group.world_size,
                },
            )
        if not interrupted:
            group.finish()
    return DiffusionOutput(
        out, model_dir, step, first_loss, last_loss, crops / max(elapsed, 1e-9), counts
    )


def _save(
    model: TumorDiffusion,
    ema: AveragedModel,
    out: Path,
    config: DiffusionTrainConfig,
    counts: dict[str, int],
) -> Path:
    """The EMA weights as a generator checkpoint."""
    saved = TumorDiffusion(
        model.autoencoder,
        model.autoencoder_config,
        ema.module,  # type: ignore[arg-type]
        model.config,
        model.scale_factor,
        trained=model.trained,
        trained_enhancement=model.trained_enhancement,
    )
    extra = {
        "trained_on": {
            "organs": list(config.data.organs),
            "tumors_per_class": counts,
            "early_from_larger": config.data.early_from_larger,
        }
    }
    return saved.save_pretrained(out / MODEL_DIR, extra=extra)


@torch.no_grad()
def _scale_factor(model: TumorDiffusion, crops_hu: torch.Tensor, device: torch.device) -> float:
    """1 / std of the latents, so the diffusion works on unit-variance latents."""
    x = hu_to_unit(crops_hu.to(device), model.autoencoder_config.hu_window)
    latent = model.autoencoder.encode_stage_2_inputs(x)
    return float(1.0 / max(float(latent.std()), 1e-6))


def _reference(config: DiffusionTrainConfig) -> float | None:
    """Where training crops put the host (None: absolute HU, a model that is not host-relative)."""
    return float(config.model.reference_hu) if config.model.host_relative else None


def _fixed_tumor_crops(
    config: DiffusionTrainConfig, scans: list, ae_config: Any
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    rng = np.random.default_rng(derive_seed(config.seed, "validation crops"))
    sampler = CropSampler(
        scans, ae_config, rng, jitter=config.data.jitter, host_reference_hu=_reference(config)
    )
    return sampler.tumor_crops(max(1, config.data.val_crops))


@torch.no_grad()
def _val_loss(loss_on: Any, crops: tuple, seed: int) -> float:
    """Noise-prediction loss on the fixed validation crops with fixed noise and timesteps."""
    return float(loss_on(crops, torch.Generator().manual_seed(derive_seed(seed, "val noise"))))


def _samples_png(
    model: TumorDiffusion,
    crops: tuple[torch.Tensor, torch.Tensor, list[int]],
    seed: int,
    path: Path,
) -> None:
    images, masks, classes = crops
    device = model.device
    steps = model.config.sample_steps[0]
    gens = [
        torch.Generator().manual_seed(derive_seed(seed, "sample", i)) for i in range(len(images))
    ]
    sampled = model.sample(
        images.to(device),
        masks.to(device),
        classes,
        steps=steps,
        generators=gens,
        host_hu=[model.config.reference_hu] * len(images),  # the crops are shifted already
    ).cpu()
    rows, outlines = [], []
    for image, mask, new in list(zip(images, masks, sampled, strict=True))[:6]:
        z = int(torch.argmax(mask[0].sum(dim=(0, 1))))  # the axial plane with most tumor
        blended = image[0] + mask[0] * (new[0] - image[0])
        rows.append([image[0][:, :, z].numpy(), blended[:, :, z].numpy()])
        outlines.append(mask[0][:, :, z].numpy() > 0.5)
    grid = render_crop_grid(
        rows, column_titles=("real tumor", f"sampled ({steps} DDIM steps)"), mask_rows=outlines
    )
    save_png(grid, path)
