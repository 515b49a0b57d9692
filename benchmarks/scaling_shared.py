"""A small data-scaling study on the shared CTs (issue 13's evidence): it proves the plumbing of
``tumorsynth scaling``, not the science (a tiny network, few steps, two real tumors in all).

The shared data hold one scan with real tumors, IRCAD 1.17, whose two tumors lie apart along x
(voxels 100-180 and 235-339). Its left part (x < 208, one tumor) is the fixed test set; its right
part, split at slice 92 into an upper and a lower crop (each with part of the other tumor), is the
pool of annotated "real" scans. Healthy scans for synthesis: IRCAD 1.7 (liver) and the
TotalSegmentator example. Curves: real scans only, and heuristic synthetic tumors (mixed 50%),
at 0, 1 and 2 real scans, seeds 0 and 1.

Usage: .venv/bin/python benchmarks/scaling_shared.py [--out runs/scaling_shared] [--steps 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from prepare_gpu_data import crop_box

from tumorsynth.io import load_image, load_label
from tumorsynth.pipelines.scaling import load_scaling, run_scaling

REPO = Path(__file__).resolve().parents[1]


def prepare(data: Path, out: Path) -> tuple[Path, Path]:
    """The test set folder and the real pool folder (nnU-Net layout) cut from IRCAD 1.17."""
    p17 = data / "ircadb01_p17"
    ct = load_image(p17 / "ircadb01_p17_ct.nii.gz")
    seg = load_label(p17 / "ircadb01_p17_label.nii.gz")
    test, pool = out / "test", out / "Dataset010_P17Right"
    whole = slice(None)
    cuts = {
        (test, "p17left"): (slice(0, 208), whole, whole),
        (pool, "p17right_lower"): (slice(208, None), whole, slice(0, 92)),
        (pool, "p17right_upper"): (slice(208, None), whole, slice(92, None)),
    }
    for (folder, case), box in cuts.items():
        split = "Ts" if folder == test else "Tr"
        image = folder / f"images{split}" / f"{case}_0000.nii.gz"
        if not image.exists():
            crop_box(ct, seg, box, image, folder / f"labels{split}" / f"{case}.nii.gz")
    return test, pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "scaling_shared")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    test, pool = prepare(args.data, args.out / "data")
    data = args.data
    base = {
        "data": {
            "organ": "liver",
            "real": [str(pool)],
            "real_label_map": "lits",
            "healthy": [
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
            ],
            "spacing_mm": [3.0, 3.0, 3.0],
            "tumor_size": "mixed",
            "num_workers": 0,
        },
        "model": {"backbone": "unet", "patch_size": [48, 48, 48], "channels": [8, 16, 32]},
        "optim": {"max_steps": args.steps, "batch_size": 2, "warmup_steps": 5, "lr": 1e-3},
        "train": {"val_every": 10**6, "checkpoint_every": 50, "log_every": 10, "device": "cpu"},
    }
    study = {
        "name": "scaling on the shared CTs (plumbing, not science)",
        "out_dir": str(args.out / "study"),
        "base": base,
        "real_counts": [0, 1, 2],
        "seeds": [0, 1],
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
    out = run_scaling(config)
    print((out / "scaling.md").read_text())
    print(f"{len(config.arms)} arms in {time.perf_counter() - start:.0f} s -> {out}")


if __name__ == "__main__":
    main()
