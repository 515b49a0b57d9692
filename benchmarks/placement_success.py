"""How often an explicit count of tumors of one size fits in IRCAD 1.7's 1.5 L liver, over seeds.

Counts placed cases, failures by message, and the cases where the tumors came out confluent (fewer
26-connected components than tumors). Usage:
    .venv/bin/python benchmarks/placement_success.py --counts 2 3 --size large --seeds 20
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter

import cc3d

from tumorsynth.errors import PlacementError
from tumorsynth.io import load_image, load_label
from tumorsynth.pipelines import synthesize_case

P07 = "../shared/data/ircadb01_p07/ircadb01_p07_"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--size", default="large")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    ct, seg = load_image(P07 + "ct.nii.gz"), load_label(P07 + "label.nii.gz")
    for count in args.counts:
        placed, confluent, failures, start = 0, 0, Counter[str](), time.perf_counter()
        for seed in range(args.seeds):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = synthesize_case(
                        ct.array,
                        seg.array,
                        spacing_mm=ct.spacing_mm,
                        label_map={"liver": 1, "kidney": 5},
                        affine=ct.affine,
                        organ="liver",
                        count=count,
                        size=args.size,
                        rng=seed,
                    )
            except PlacementError as error:
                failures[str(error).split(": ", 1)[-1][:80]] += 1
                continue
            placed += 1
            _, components = cc3d.connected_components(out.label == 2, return_N=True)
            confluent += components < count
        seconds = time.perf_counter() - start
        print(
            f"count {count} {args.size}: {placed}/{args.seeds} placed, {confluent} confluent, "
            f"{seconds / args.seeds:.1f} s per case; failures {dict(failures)}"
        )


if __name__ == "__main__":
    main()
