"""Data-loading throughput of training with on-the-fly synthesis (no network), and, on a GPU,
a short training run, prediction and evaluation.

Loader only (any machine):
    .venv/bin/python benchmarks/bench_training.py loader --healthy DIR[:LABEL_MAP] ... --workers 8
Prediction speed of a UNet on a 512 x 512 x 150 CT (random weights; the cost does not depend on
them):
    .venv/bin/python benchmarks/bench_training.py predict-speed --device cuda
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def healthy_entries(values: list[str]) -> list[dict[str, str]]:
    out = []
    for value in values:
        path, _, label_map = value.partition(":")
        out.append({"path": path, "label_map": label_map or "totalsegmentator"})
    return out


def loader_throughput(args: argparse.Namespace) -> dict[str, float]:
    from tumorsynth.training.config import TrainConfig
    from tumorsynth.training.data import build_datasets, split_cases
    from tumorsynth.training.segmentation import make_loader

    config = TrainConfig.from_dict(
        {
            "data": {
                "mode": "synthetic",
                "organ": args.organ,
                "healthy": healthy_entries(args.healthy),
                "val_fraction": 0.0,
                "spacing_mm": args.spacing,
                "num_workers": args.workers,
                "samples_per_case": args.samples_per_case,
            },
            "optim": {"batch_size": args.batch_size},
        }
    )
    train, _ = split_cases(config)
    start = time.perf_counter()
    dataset, weights, _ = build_datasets(config, train, [], config.data.spacing_mm)
    cache_s = time.perf_counter() - start
    loader = make_loader(config, dataset, weights)
    batches = iter(loader)
    next(batches)  # workers started
    start = time.perf_counter()
    crops = 0
    for _ in range(args.batches):
        batch = next(batches)
        crops += batch["image"].shape[0]
    seconds = time.perf_counter() - start
    return {
        "workers": args.workers,
        "crops": crops,
        "seconds": seconds,
        "crops_per_s": crops / seconds,
        "cache_seconds": cache_s,
        "patch": list(config.model.patch_size),
        "spacing_mm": list(config.data.spacing_mm),
    }


def predict_speed(args: argparse.Namespace) -> dict[str, float]:
    import torch

    from tumorsynth.io.nifti import Volume
    from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor
    from tumorsynth.pipelines.predict import Segmentor

    config = SegmentorConfig(backbone=args.backbone, spacing_mm=tuple(args.spacing))
    device = torch.device(args.device)
    model = build_segmentor(config).to(device).eval()
    seg = Segmentor(
        model,
        {
            "organ": "liver",
            "spacing_mm": list(config.spacing_mm),
            "hu_window": [-175, 250],
            "patch_size": list(config.patch_size),
        },
        device,
    )
    rng = np.random.default_rng(0)
    ct = rng.integers(-200, 300, size=(512, 512, 150), dtype=np.int16)
    image = Volume(ct, np.diag([-0.78, -0.78, 1.6, 1.0]))
    seg.predict(image, overlap=args.overlap)  # warm-up (cudnn autotune, allocations)
    times = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        seg.predict(image, overlap=args.overlap)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {
        "backbone": args.backbone,
        "device": str(device),
        "overlap": args.overlap,
        "spacing_mm": list(config.spacing_mm),
        "seconds_median": float(np.median(times)),
        "seconds": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    lo = sub.add_parser("loader")
    lo.add_argument("--healthy", nargs="+", required=True, help="DIR[:LABEL_MAP]")
    lo.add_argument("--organ", default="liver")
    lo.add_argument("--workers", type=int, default=2)
    lo.add_argument("--batches", type=int, default=50)
    lo.add_argument("--batch-size", type=int, default=4)
    lo.add_argument("--samples-per-case", type=int, default=2)
    lo.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 1.5])
    ps = sub.add_parser("predict-speed")
    ps.add_argument("--device", default="cpu")
    ps.add_argument("--backbone", default="unet")
    ps.add_argument("--overlap", type=float, default=0.25)
    ps.add_argument("--repeats", type=int, default=3)
    ps.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 1.5])
    args = parser.parse_args()
    result = loader_throughput(args) if args.what == "loader" else predict_speed(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
