"""How often a segmentor accepts each generator's tumors (issue 12's evidence), and what the filter
costs per tumor.

One segmentor (``tumorsynth train`` on real tumors, e.g. IRCAD 1.17's two) judges liver tumors of
every generator given, in IRCAD 1.7's liver (a scan it never saw), ``--seeds`` cases of one tumor
per size class each, with no redraws (``retries 0``): the share that passes is the generator's
acceptance rate at the threshold. The time per tumor is the filter's own (its network call on
the tumor's cube and the write-back), measured around ``TumorFilter.score``.

Usage: .venv/bin/python benchmarks/filter_acceptance.py --segmentor RUN/model
       [--diffusion RUN/model] [--adversarial RUN/model] [--seeds 8] [--threshold 0.7]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from generator_options import add_generator_options, generators_from

from tumorsynth.io import load_image, load_label
from tumorsynth.pipelines import synthesize_case
from tumorsynth.pipelines.tumor_filter import TumorFilter

REPO = Path(__file__).resolve().parents[1]
SIZES = ("tiny", "small", "medium", "large")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmentor", required=True)
    add_generator_options(parser)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    judge = TumorFilter.load(
        args.segmentor, device=args.device, threshold=args.threshold, retries=0
    )
    seconds: list[float] = []
    original = judge.score

    def timed(items):
        start = time.perf_counter()
        out = original(items)
        seconds.append((time.perf_counter() - start) / max(len(items), 1))
        return out

    judge.score = timed  # type: ignore[method-assign]
    case = args.data / "ircadb01_p07"
    ct = load_image(case / "ircadb01_p07_ct.nii.gz")
    seg = load_label(case / "ircadb01_p07_label.nii.gz")
    generators = generators_from(args, args.device)
    print(f"segmentor {args.segmentor} ({judge.organ}), threshold {judge.threshold}, IRCAD 1.7")
    print("\n| generator | size | n | accepted | score median [IQR] |")
    print("|---|---|---|---|---|")
    for name, generator in generators.items():
        for size in SIZES:
            scores = []
            for seed in range(args.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = synthesize_case(
                        ct.array,
                        seg.array,
                        spacing_mm=ct.spacing_mm,
                        label_map={"liver": 1, "kidney": 5},
                        organ="liver",
                        count=1,
                        size=size,
                        generator=generator,  # type: ignore[arg-type]
                        rng=seed,
                        affine=ct.affine,
                        filters=[judge],
                    )
                scores += [float(r.filter_verdict["score"]) for r in out.records]
            s = np.asarray(scores)
            q1, med, q3 = np.percentile(s, [25, 50, 75])
            accepted = int((s > judge.threshold).sum())
            print(
                f"| {name} | {size} | {len(s)} | {accepted}/{len(s)} | "
                f"{med:.2f} [{q1:.2f}, {q3:.2f}] |",
                flush=True,
            )
    print(f"\nfilter time per tumor: median {1000 * np.median(seconds):.0f} ms ({args.device})")


if __name__ == "__main__":
    main()
