"""Training-step time, peak memory and 512 x 512 x 150 prediction time of each backbone.

Random data and weights (the costs do not depend on them). Usage:
    .venv/bin/python benchmarks/bench_backbones.py --device cuda [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from monai.losses import DiceCELoss

from tumorsynth.io.nifti import Volume
from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor, count_parameters
from tumorsynth.pipelines.predict import Segmentor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--backbones", nargs="+", default=["unet", "dynunet", "swinunetr", "swinunetr_v2"]
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    ct = rng.integers(-200, 300, size=(512, 512, 150), dtype=np.int16)
    image = Volume(ct, np.diag([-0.78, -0.78, 1.6, 1.0]))
    results = []
    for name in args.backbones:
        config = SegmentorConfig(
            backbone="swinunetr" if name.startswith("swin") else name, swin_v2=name.endswith("_v2")
        )
        model = build_segmentor(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        x = torch.rand(args.batch, 1, *config.patch_size, device=device)
        y = torch.randint(0, 3, (args.batch, 1, *config.patch_size), device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        model.eval()
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
        seg.predict(image)
        predict = []
        for _ in range(2):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            seg.predict(image)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            predict.append(time.perf_counter() - start)
        results.append(
            {
                "backbone": name,
                "parameters_m": count_parameters(model) / 1e6,
                "train_step_s": float(np.median(times[3:])),
                "crops_per_s_compute": args.batch / float(np.median(times[3:])),
                "peak_gpu_gb": memory,
                "predict_512x512x150_s": float(np.median(predict)),
            }
        )
        print(json.dumps(results[-1]), flush=True)
        del model, optimizer, seg
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
