"""Speed and memory of the learned (diffusion) generator.

Three measurements:

1. **Model**: ms per tumor of ``TumorDiffusion.sample`` on ``crop``^3 crops (encode the masked crop,
   DDIM steps, decode), for each step count, batch size and precision (bf16 autocast or fp32 on
   CUDA; fp32 on CPU); peak GPU memory. Weights are random (speed does not depend on them)
   unless ``--checkpoint`` is given.
2. **Training**: optimizer steps per second of both stages on random crops (no data loading):
   the autoencoder (L1 + VQ + the patch-adversarial loss, generator and discriminator steps) and
   the denoiser (frozen autoencoder, noise prediction), at ``--train-batch``.
3. **Pipeline**: ms per tumor of ``synthesize_case`` with the diffusion generator (placement,
   shape, crop reading, sampling, blending), on IRCAD 1.7's liver when ../shared/data is there,
   else on the phantom.

``--budget-s`` stops starting new measurements once that much time has passed (the GPU machine
gives 10 minutes a command); what was skipped is printed.

Targets (issues 4 and 11): < 25 ms per tumor batched with 4 steps on an H100/H200, DiffTumor's
paper about 100 ms per tumor; < 5 s per tumor on the 2-core CPU machine.

    .venv/bin/python benchmarks/bench_diffusion.py                       # CPU defaults
    python benchmarks/bench_diffusion.py --device cuda --batch 1 16 32 --budget-s 480   # GPU
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from tumorsynth.generators.diffusion import DiffusionGenerator  # noqa: E402
from tumorsynth.models.tumor_diffusion import (  # noqa: E402
    EARLY,
    AutoencoderConfig,
    DenoiserConfig,
    TumorDiffusion,
    build_autoencoder,
    build_denoiser,
)


def default_model(crop: int, device: torch.device) -> TumorDiffusion:
    ae_config = AutoencoderConfig(crop_size=crop)
    config = DenoiserConfig()
    torch.manual_seed(0)
    model = TumorDiffusion(
        build_autoencoder(ae_config),
        ae_config,
        build_denoiser(config, ae_config.embedding_dim),
        config,
    )
    model.files = {"random weights (benchmark)": "none"}
    return model.to(device)


def time_sample(
    model: TumorDiffusion, batch: int, steps: int, repeats: int, amp: bool = True
) -> float:
    """Median seconds of one batched ``sample`` call."""
    device = model.device
    n = model.autoencoder_config.crop_size
    crops = torch.full((batch, 1, n, n, n), 100.0, device=device)
    crops += 15.0 * torch.randn(crops.shape, generator=torch.Generator().manual_seed(0)).to(device)
    masks = torch.zeros_like(crops)
    c, r = n // 2, max(2, n // 8)
    masks[:, :, c - r : c + r, c - r : c + r, c - r : c + r] = 1.0
    gens = [torch.Generator().manual_seed(i) for i in range(batch)]
    times = []
    for i in range(repeats + 1):  # the first call warms up kernels and allocator
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.sample(
            crops, masks, [EARLY] * batch, steps=steps, generators=gens, amp=amp,
            host_hu=[100.0] * batch,
        )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def train_steps_per_second(
    model: TumorDiffusion, stage: str, batch: int, steps: int, amp: bool
) -> float:
    """Optimizer steps per second of one training stage on random crops (after one warm-up)."""
    import torch.nn.functional as F
    from monai.losses import PatchAdversarialLoss

    from tumorsynth.models.tumor_diffusion import build_discriminator, train_scheduler

    device = model.device
    n = model.autoencoder_config.crop_size
    x = torch.rand((batch, 1, n, n, n), device=device) * 2 - 1
    masks = torch.zeros_like(x)
    masks[:, :, n // 4 : 3 * n // 4, n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = 1.0
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"
    )
    if stage == "autoencoder":
        ae = model.autoencoder.train()
        disc = build_discriminator(model.autoencoder_config).to(device)
        opt_g, opt_d = torch.optim.Adam(ae.parameters()), torch.optim.Adam(disc.parameters())
        adv = PatchAdversarialLoss(criterion="least_squares")

        def step() -> None:
            with autocast:
                recon, quant = ae(x)
                loss = F.l1_loss(recon.float(), x) + quant.float()
                loss = loss + 0.01 * adv(
                    disc(recon)[-1], target_is_real=True, for_discriminator=False
                )
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            with autocast:
                d_loss = adv(disc(recon.detach())[-1], target_is_real=False, for_discriminator=True)
                d_loss = 0.5 * (
                    d_loss + adv(disc(x)[-1], target_is_real=True, for_discriminator=True)
                )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

    else:
        from functools import partial

        denoiser = model.denoiser.train()
        model.autoencoder.eval().requires_grad_(False)
        optimizer = torch.optim.Adam(denoiser.parameters())
        inferer = model.inferer(train_scheduler(model.config))
        labels = torch.zeros(batch, dtype=torch.long, device=device)

        def step() -> None:
            noise = torch.randn(model.latent_shape(batch), device=device)
            t = torch.randint(0, model.config.num_train_timesteps, (batch,), device=device)
            with torch.no_grad():
                cond = model.condition(x, masks)
            with autocast:
                pred = inferer(
                    inputs=x,
                    autoencoder_model=model.autoencoder,
                    diffusion_model=partial(denoiser, class_labels=labels),
                    noise=noise,
                    timesteps=t,
                    condition=cond,
                    mode="concat",
                )
                loss = F.mse_loss(pred.float(), noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    model.autoencoder.eval()
    model.denoiser.eval()
    return steps / (time.perf_counter() - start)


def pipeline(model: TumorDiffusion, tumors: int) -> tuple[float, str]:
    from tumorsynth.io import load_image, load_label
    from tumorsynth.phantom import make_phantom
    from tumorsynth.pipelines.synthesize import synthesize_case

    data = REPO.parent / "shared" / "data" / "ircadb01_p07"
    if data.is_dir():
        ct = load_image(data / "ircadb01_p07_ct.nii.gz")
        seg = load_label(data / "ircadb01_p07_label.nii.gz")
        where, lmap = "IRCAD 1.7 liver (native 0.78 x 0.78 x 1.6 mm)", {"liver": 1, "kidney": 5}
    else:
        ct, seg = make_phantom(0)
        where, lmap = "phantom liver", "phantom"
    gen = DiffusionGenerator(model, max_batch=tumors)
    run = lambda seed: synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map=lmap,
        organ="liver",
        count=tumors,
        size="small",
        generator=gen,
        rng=seed,
        affine=ct.affine,
    )
    run(0)
    times = []
    for seed in (1, 2):
        start = time.perf_counter()
        run(seed)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / tumors, where


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 50])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=("bf16", "fp32"),
        help="default: both on CUDA, fp32 on CPU",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=2, help="0 skips the training rates")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=float("inf"))
    parser.add_argument("--checkpoint", help="time a trained checkpoint instead")
    parser.add_argument("--pipeline-tumors", type=int, default=4, help="0 skips the pipeline")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    precisions = args.precision or (["bf16", "fp32"] if device.type == "cuda" else ["fp32"])
    model = (
        TumorDiffusion.from_pretrained(args.checkpoint, device=device)
        if args.checkpoint
        else default_model(args.crop, device)
    )
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU, {torch.get_num_threads()} threads")
    )
    ae = model.autoencoder_config
    print(
        f"device: {name}; crop {ae.crop_size}^3 at {ae.spacing_mm} mm; "
        f"autoencoder {ae.channels}, denoiser {model.config.channels}; torch {torch.__version__}"
    )
    skipped: list[str] = []

    def in_budget(what: str) -> bool:
        if time.perf_counter() - start < args.budget_s:
            return True
        skipped.append(what)
        return False

    print("\n| precision | steps | batch | ms per batch | ms per tumor | peak GPU memory |")
    print("|---|---|---|---|---|---|")
    for precision in precisions:
        for steps in args.steps:
            for batch in args.batch:
                if not in_budget(f"sampling {precision} {steps} steps batch {batch}"):
                    continue
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds = time_sample(model, batch, steps, args.repeats, precision == "bf16")
                print(
                    f"| {precision} | {steps} | {batch} | {1000 * seconds:.1f} | "
                    f"{1000 * seconds / batch:.1f} | {_peak(device)} |",
                    flush=True,
                )
    if args.train_batch:
        print("\n| stage | precision | batch | steps/s | crops/s | peak GPU memory |")
        print("|---|---|---|---|---|---|")
        for stage in ("autoencoder", "denoiser"):
            for precision in precisions:
                if not in_budget(f"training {stage} {precision}"):
                    continue
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                rate = train_steps_per_second(
                    model, stage, args.train_batch, args.train_steps, precision == "bf16"
                )
                print(
                    f"| {stage} | {precision} | {args.train_batch} | {rate:.2f} | "
                    f"{rate * args.train_batch:.1f} | {_peak(device)} |",
                    flush=True,
                )
    if args.pipeline_tumors and in_budget("pipeline"):
        per_tumor, where = pipeline(model, args.pipeline_tumors)
        print(
            f"\npipeline: synthesize_case, {args.pipeline_tumors} small tumors in {where}, "
            f"default steps: {1000 * per_tumor:.0f} ms per tumor"
        )
    if skipped:
        print(f"\nskipped (past --budget-s {args.budget_s:g}): {'; '.join(skipped)}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss:.0f} MB; {time.perf_counter() - start:.0f} s in all")


def _peak(device: torch.device) -> str:
    if device.type != "cuda":
        return "-"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"


if __name__ == "__main__":
    main()
