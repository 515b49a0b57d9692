"""Compare the appearance of real liver tumors (IRCAD 1.17) with synthetic ones (IRCAD 1.7).

Usage: .venv/bin/python benchmarks/calibration.py [--data ../shared/data] [--n 12]
Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cc3d
import numpy as np

from tumorsynth.io import load_image, load_label
from tumorsynth.pipelines import synthesize_case
from tumorsynth.realism import lesion_appearance

COLUMNS = (
    "volume_ml",
    "tumor_mean_hu",
    "parenchyma_mean_hu",
    "contrast_hu",
    "cnr",
    "rim_hu",
    "core_hu",
    "heterogeneity_hu",
    "edge_width_mm",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    parser.add_argument("--n", type=int, default=4, help="synthetic cases per size class")
    args = parser.parse_args()
    data = Path(args.data)
    rows = []
    ct = load_image(data / "ircadb01_p17" / "ircadb01_p17_ct.nii.gz")
    seg = load_label(data / "ircadb01_p17" / "ircadb01_p17_label.nii.gz")
    comps = cc3d.connected_components(seg.array == 2, connectivity=26)
    for i in range(1, int(comps.max()) + 1):
        a = lesion_appearance(ct.array, comps == i, seg.array == 1, ct.spacing_mm)
        rows.append((f"real IRCAD 1.17 #{i}", a.to_dict()))
    ct7 = load_image(data / "ircadb01_p07" / "ircadb01_p07_ct.nii.gz")
    seg7 = load_label(data / "ircadb01_p07" / "ircadb01_p07_label.nii.gz")
    for size in ("small", "medium", "large"):
        stats = []
        for seed in range(args.n):
            out = synthesize_case(
                ct7.array,
                seg7.array,
                spacing_mm=ct7.spacing_mm,
                label_map={"liver": 1, "kidney": 5},
                organ="liver",
                count=1,
                size=size,
                rng=seed,
            )
            stats.append(
                lesion_appearance(
                    out.image, out.label == 2, out.label == 1, ct7.spacing_mm
                ).to_dict()
            )
        mean = {k: round(float(np.nanmean([s[k] for s in stats])), 1) for k in COLUMNS}
        rows.append((f"synthetic {size} in IRCAD 1.7 (mean of {args.n})", mean))
    print("| lesion | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, values in rows:
        print(f"| {name} | " + " | ".join(f"{values[c]:.1f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()
