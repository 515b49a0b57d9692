"""Speed and memory of the learned (diffusion) generator.

Two measurements:

1. **Model**: ms per tumor of ``TumorDiffusion.sample`` on ``crop``^3 crops (encode the masked crop,
   DDIM steps, decode), for each step count and batch size; bf16 autocast on CUDA; peak GPU memory.
   Weights are random (speed does not depend on them) unless ``--checkpoint`` is given.
2. **Pipeline**: ms per tumor of ``synthesize_case`` with the diffusion generator (placement,
   shape, crop reading, sampling, blending), on IRCAD 1.7's liver when ../shared/data is there,
   else on the phantom.

Targets (issue 4): < 25 ms per tumor batched with 4 steps on an H100; < 5 s per tumor on the
2-core CPU machine.

    .venv/bin/python benchmarks/bench_diffusion.py                       # CPU defaults
    python benchmarks/bench_diffusion.py --device cuda --batch 1 16 32   # GPU
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
    model.sha256 = "random-weights-for-benchmark"
    return model.to(device)


def time_sample(model: TumorDiffusion, batch: int, steps: int, repeats: int) -> float:
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
            crops, masks, [EARLY] * batch, steps=steps, generators=gens, amp=True,
            host_hu=[100.0] * batch,
        )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 50])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", help="time a trained checkpoint instead")
    parser.add_argument("--pipeline-tumors", type=int, default=4, help="0 skips the pipeline")
    args = parser.parse_args()
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
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
    print("\n| steps | batch | ms per batch | ms per tumor | peak GPU memory |")
    print("|---|---|---|---|---|")
    for steps in args.steps:
        for batch in args.batch:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = time_sample(model, batch, steps, args.repeats)
            peak = (
                f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
                if device.type == "cuda"
                else "-"
            )
            print(
                f"| {steps} | {batch} | {1000 * seconds:.1f} | {1000 * seconds / batch:.1f} | "
                f"{peak} |",
                flush=True,
            )
    if args.pipeline_tumors:
        per_tumor, where = pipeline(model, args.pipeline_tumors)
        print(
            f"\npipeline: synthesize_case, {args.pipeline_tumors} small tumors in {where}, "
            f"default steps: {1000 * per_tumor:.0f} ms per tumor"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
