"""Speed and memory of the adversarial generator and of the quality filter (issue 12).

Three measurements:

1. **Generator**: ms per tumor of ``TumorAdversary.sample`` on ``crop``^3 cubes (the change
   network, its tanh and smoothing), per batch size and precision (bf16 autocast or fp32 on
   CUDA; fp32 on CPU), and peak GPU memory. Random weights (speed does not depend on them).
2. **Filter**: ms per tumor of ``TumorFilter.score``: reading each tumor's cube from its crop,
   the segmentor (the ``tumorsynth train`` default UNet at ``--filter-cube``^3), writing the
   prediction back onto the tumor's voxels; per batch size.
3. **Training**: steps per second of ``train_adversarial`` itself (healthy crops with tumors drawn
   by the core, real-tumor crops, the generator, the discriminator and the frozen segmentor) on
   phantoms written to a temporary folder, so data preparation is counted as in a real run.

``--budget-s`` stops starting new measurements once that much time has passed (the GPU machine
gives 10 minutes a command); what was skipped is printed.

    .venv/bin/python benchmarks/bench_adversarial.py                     # CPU defaults
    python benchmarks/bench_adversarial.py --device cuda --batch 1 16 32 --budget-s 420
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from tumorsynth.io.nifti import Volume, save_volume  # noqa: E402
from tumorsynth.models.adversarial import (  # noqa: E402
    AdversarialConfig,
    TumorAdversary,
    build_change_net,
)
from tumorsynth.models.segmentors import (  # noqa: E402
    SegmentorConfig,
    build_segmentor,
    save_segmentor,
)
from tumorsynth.phantom import make_phantom  # noqa: E402
from tumorsynth.pipelines import synthesize_case  # noqa: E402
from tumorsynth.pipelines.tumor_filter import FilterInput, TumorFilter  # noqa: E402


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds
        self.skipped: list[str] = []

    def allows(self, what: str) -> bool:
        if time.perf_counter() < self.end:
            return True
        self.skipped.append(what)
        return False


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peak_mb(device: torch.device) -> str:
    if device.type != "cuda":
        return "-"
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"


def generator_rows(args, device, budget) -> None:
    config = AdversarialConfig(crop_size=args.crop)
    torch.manual_seed(0)
    model = TumorAdversary(build_change_net(config).eval(), config).to(device)
    print("\n| generator | precision | batch | ms per tumor | peak GPU MB |")
    print("|---|---|---|---|---|")
    for precision in ("bf16", "fp32") if device.type == "cuda" else ("fp32",):
        for batch in args.batch:
            if not budget.allows(f"generator {precision} batch {batch}"):
                continue
            crops = torch.full((batch, 1, args.crop, args.crop, args.crop), 100.0, device=device)
            masks = torch.zeros_like(crops)
            lo, hi = args.crop // 4, 3 * args.crop // 4
            masks[:, :, lo:hi, lo:hi, lo:hi] = 1.0
            gens = [torch.Generator().manual_seed(i) for i in range(batch)]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                seconds = timed(
                    lambda: model.sample(crops, masks, [100.0] * batch, gens),  # noqa: B023
                    device,
                    args.repeats,
                )
            print(
                f"| {args.crop}^3 | {precision} | {batch} | {1000 * seconds / batch:.1f} | "
                f"{peak_mb(device)} |",
                flush=True,
            )


def filter_rows(args, device, budget, folder: Path) -> None:
    seg_config = SegmentorConfig(patch_size=(args.filter_cube,) * 3)
    torch.manual_seed(0)
    stored = {
        "model": seg_config.to_dict(),
        "organ": "liver",
        "spacing_mm": list(seg_config.spacing_mm),
        "hu_window": [-175.0, 250.0],
        "patch_size": list(seg_config.patch_size),
    }
    save_segmentor(build_segmentor(seg_config), stored, folder / "judge")
    judge = TumorFilter.load(folder / "judge", device=str(device), max_batch=max(args.batch))
    shape = (160, 160, 80)
    g = np.indices(shape).transpose(1, 2, 3, 0) * np.array([0.8, 0.8, 2.0])
    tumor = np.linalg.norm(g - g[80, 80, 40], axis=-1) < 15.0
    image = np.where(tumor, 70.0, 110.0).astype(np.float32)
    item = FilterInput(image, tumor, (0.8, 0.8, 2.0), np.diag([0.8, 0.8, 2.0, 1.0]))
    print(
        f"\n| filter (UNet, {args.filter_cube}^3 at 1.5 mm) | batch | ms per tumor | peak GPU MB |"
    )
    print("|---|---|---|---|")
    for batch in args.batch:
        if not budget.allows(f"filter batch {batch}"):
            continue
        judge.max_batch = batch
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = timed(lambda: judge.score([item] * batch), device, args.repeats)  # noqa: B023
        print(f"| fp32 | {batch} | {1000 * seconds / batch:.1f} | {peak_mb(device)} |", flush=True)


def training_row(args, device, budget, folder: Path) -> None:
    if args.train_steps < 1 or not budget.allows("training"):
        return
    from tumorsynth.training.adversarial import train_adversarial
    from tumorsynth.training.adversarial_config import AdversarialTrainConfig

    healthy = folder / "healthy"
    for i in range(2):
        ct, seg = make_phantom(i, shape=(160, 128, 80), spacing_mm=(2.0, 2.0, 2.5))
        save_volume(ct, healthy / f"h{i}_ct.nii.gz")
        save_volume(seg, healthy / f"h{i}_seg.nii.gz")
    ct, seg = make_phantom(7, shape=(160, 128, 80), spacing_mm=(2.0, 2.0, 2.5))
    out = synthesize_case(
        ct.array, seg.array, spacing_mm=ct.spacing_mm, label_map="phantom", organ="liver",
        count=2, size="medium", rng=0, affine=ct.affine,
    )  # fmt: skip
    save_volume(Volume(out.image, ct.affine), folder / "real_ct.nii.gz")
    save_volume(Volume(out.label, ct.affine), folder / "real_seg.nii.gz")
    cases = [
        {"image": str(healthy / f"h{i}_ct.nii.gz"), "label": str(healthy / f"h{i}_seg.nii.gz")}
        for i in range(2)
    ]
    config = AdversarialTrainConfig.from_dict(
        {
            "segmentor": str(folder / "judge"),
            "data": {
                "healthy": cases,
                "healthy_label_map": "phantom",
                "real": [{"image": str(folder / "real_ct.nii.gz"),
                          "label": str(folder / "real_seg.nii.gz"), "label_map": "tumorsynth"}],
                "val_crops": 1,
            },
            "model": {"crop_size": args.crop},
            "optim": {"batch_size": args.train_batch, "max_steps": args.train_steps},
            "train": {"out_dir": str(folder / "run"), "device": str(device),
                      "val_every": 10**6},
        }
    )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = train_adversarial(config, progress=False)
    seconds = time.perf_counter() - start
    print("\n| training | batch | steps | steps/s (loop) | crops/s | wall s | peak GPU MB |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| adversarial {args.crop}^3 | {args.train_batch} | {result.steps} | "
        f"{result.crops_per_second / args.train_batch:.2f} | {result.crops_per_second:.1f} | "
        f"{seconds:.0f} | {peak_mb(device)} |",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--filter-cube", type=int, default=96)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=float("inf"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    budget = Budget(args.budget_s)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"adversarial generator and filter on {name}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generator_rows(args, device, budget)
        filter_rows(args, device, budget, folder)
        training_row(args, device, budget, folder)
    for what in budget.skipped:
        print(f"skipped (past --budget-s {args.budget_s:g}): {what}")


if __name__ == "__main__":
    main()
