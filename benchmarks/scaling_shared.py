"""A small data-scaling study on the shared CTs (issue 13's evidence): it proves the plumbing of
``tumorsynth scaling``, not the science (a tiny network, few steps, two real tumors in all).

The shared data hold one scan with real tumors, IRCAD 1.17, whose two tumors lie apart along x
(voxels 100-180 and 235-339). Its left part (x < 208, one tumor) is the fixed test set; its right
part, split at slice 92 into an upper and a lower crop (each with part of the other tumor), is the
pool of annotated "real" scans. Healthy scans for synthesis: IRCAD 1.7 (liver) and the
TotalSegmentator example. Curves: real scans only, and heuristic synthetic tumors (mixed 50%),
at 0, 1 and 2 real scans, seeds 0 and 1.

Usage: .venv/bin/python benchmarks/scaling_shared.py [--out runs/scaling_shared] [--steps 60]
       [--device cpu] [--real-counts 0 1 2] [--seeds 0 1] [--num-workers 0] [--budget-s S]
       [--gpu-data .gpu/data --patch-size 40]

``--gpu-data`` takes the cropped CTs that benchmarks/prepare_gpu_data.py carries to the GPU
machine instead of the shared ones: IRCAD 1.17's liver crop (the same cuts, shifted by where the
crop starts, ``p17_crop.json``; each part then holds less background than the full-scan cut, and
the lower pool part is 44 voxels wide at 3 mm: it needs ``--patch-size 40`` or less), and the
healthy IRCAD 1.7 crop and TotalSegmentator example. ``--budget-s`` trains the arms one
after another and starts no arm that the mean arm time so far says would end past the budget;
the table then has the arms done.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import yaml
from prepare_gpu_data import crop_box

from tumorsynth.io import load_image, load_label
from tumorsynth.pipelines.scaling import load_scaling, run_scaling

REPO = Path(__file__).resolve().parents[1]
X_SPLIT, Z_SPLIT = 208, 92  # voxels of the full IRCAD 1.17 scan: between the tumors; the pool's cut


def prepare(data: Path, out: Path, gpu_data: Path | None = None) -> tuple[Path, Path]:
    """The test set folder and the real pool folder (nnU-Net layout) cut from IRCAD 1.17 (from
    ``gpu_data``'s crop of it when given, cut at the same places of the full scan)."""
    if gpu_data is None:
        p17 = data / "ircadb01_p17"
        ct = load_image(p17 / "ircadb01_p17_ct.nii.gz")
        seg = load_label(p17 / "ircadb01_p17_label.nii.gz")
        x0, _, z0 = 0, 0, 0
    else:
        ct = load_image(gpu_data / "test" / "p17_0000.nii.gz")
        seg = load_label(gpu_data / "test_labels" / "p17.nii.gz")
        x0, _, z0 = json.loads((gpu_data / "p17_crop.json").read_text())["start_voxel"]
    x, z = X_SPLIT - x0, Z_SPLIT - z0
    if not (0 < x < ct.array.shape[0] and 0 < z < ct.array.shape[2]):
        raise SystemExit(f"IRCAD 1.17 crop starting at voxel {(x0, z0)} misses the cuts {x, z}")
    test, pool = out / "test", out / "Dataset010_P17Right"
    whole = slice(None)
    cuts = {
        (test, "p17left"): (slice(0, x), whole, whole),
        (pool, "p17right_lower"): (slice(x, None), whole, slice(0, z)),
        (pool, "p17right_upper"): (slice(x, None), whole, slice(z, None)),
    }
    for (folder, case), box in cuts.items():
        split = "Ts" if folder == test else "Tr"
        image = folder / f"images{split}" / f"{case}_0000.nii.gz"
        if not image.exists():
            crop_box(ct, seg, box, image, folder / f"labels{split}" / f"{case}.nii.gz")
    return test, pool


def healthy_scans(data: Path, gpu_data: Path | None) -> list[dict[str, str]]:
    """IRCAD 1.7 (liver) and the TotalSegmentator example, shared or as carried to the GPU."""
    if gpu_data is not None:
        return [
            {"path": str(gpu_data / "Dataset001_P07"), "label_map": "lits"},
            {"path": str(gpu_data / "Dataset002_TS"), "label_map": "totalsegmentator"},
        ]
    return [
        {
            "image": str(data / "ircadb01_p07/ircadb01_p07_ct.nii.gz"),
            "label": str(data / "ircadb01_p07/ircadb01_p07_label.nii.gz"),
            "label_map": "lits",
        },
        {
            "image": str(data / "totalseg_example/example_ct_sm.nii.gz"),
            "label": str(data / "totalseg_example/example_seg.nii.gz"),
            "label_map": "totalsegmentator",
        },
    ]


def run_within(config: Any, budget_s: float) -> tuple[Path, int]:
    """Run the arms in order, each as a study of the arms so far (done arms are skipped), and
    start none that the mean arm time so far says would end past ``budget_s``."""
    start, done, out = time.perf_counter(), 0, Path(config.out_dir)
    for count in range(1, len(config.arms) + 1):
        elapsed = time.perf_counter() - start
        if done and elapsed + elapsed / done > budget_s:
            break
        out = run_scaling(dataclasses.replace(config, arms=config.arms[:count]))
        done = count
    return out, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "scaling_shared")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="cpu", help="train.device of every arm")
    parser.add_argument("--real-counts", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--num-workers", type=int, default=0, help="data.num_workers")
    parser.add_argument("--patch-size", type=int, default=48, help="cube edge in voxels at 3 mm")
    parser.add_argument("--budget-s", type=float, help="start no arm past this (seconds)")
    parser.add_argument("--gpu-data", type=Path, help="prepare_gpu_data.py's .gpu/data instead")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the study file names every path from where it lies
    args.gpu_data = args.gpu_data.resolve() if args.gpu_data else None
    test, pool = prepare(args.data, args.out / "data", args.gpu_data)
    base = {
        "data": {
            "organ": "liver",
            "real": [str(pool)],
            "real_label_map": "lits",
            "healthy": healthy_scans(args.data, args.gpu_data),
            "spacing_mm": [3.0, 3.0, 3.0],
            "tumor_size": "mixed",
            "num_workers": args.num_workers,
        },
        "model": {"backbone": "unet", "patch_size": [args.patch_size] * 3, "channels": [8, 16, 32]},
        "optim": {"max_steps": args.steps, "batch_size": 2, "warmup_steps": 5, "lr": 1e-3},
        "train": {
            "val_every": 10**6,
            "checkpoint_every": 50,
            "log_every": 10,
            "device": args.device,
        },
    }
    study = {
        "name": "scaling on the shared CTs (plumbing, not science)",
        "out_dir": str(args.out / "study"),
        "base": base,
        "real_counts": args.real_counts,
        "seeds": args.seeds,
        "synthetic": [
            {"name": "real only"},
            {"name": "heuristic (mixed 50%)", "generator": "heuristic", "share": 0.5},
        ],
        "test": [
            {
                "name": "IRCAD 1.17 left",
                "images": str(test / "imagesTs"),
                "labels": str(test / "labelsTs"),
                "label_map": "lits",
                "organ": "liver",
            }
        ],
        "evaluate": {"bootstrap": 0},
    }
    path = args.out / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    start = time.perf_counter()
    config = load_scaling(path)
    if args.budget_s is None:
        out, done = run_scaling(config), len(config.arms)
    else:
        out, done = run_within(config, args.budget_s)
    print((out / "scaling.md").read_text())
    print(f"{done} of {len(config.arms)} arms in {time.perf_counter() - start:.0f} s -> {out}")


if __name__ == "__main__":
    main()
