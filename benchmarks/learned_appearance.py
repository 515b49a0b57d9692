"""Appearance of the learned generators' tumors beside the heuristic generator's and the real ones
(issues 11 and 12), with the sampling time.

Host: IRCAD 1.17 outside its two real liver tumors (10 mm away), the scan the checkpoint learned
from, so every difference is the generator's. For each generator and size class (small = early
stage, medium, large), ``--seeds`` runs of one tumor each; each new tumor is measured by
``tumorsynth.realism.context_features`` on its own mask (the real ones are left out of it),
exactly as the real tumors are. The table gives the median [IQR] per feature and the median
wall time per tumor (the case's organ analysis included, as a user waits for it).

Usage: .venv/bin/python benchmarks/learned_appearance.py [--diffusion RUN/model]
    [--adversarial RUN/model] [--seeds 8]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from generator_options import add_generator_options, generators_from
from scipy import ndimage as ndi

from tumorsynth.io import load_image, load_label
from tumorsynth.pipelines import synthesize_case
from tumorsynth.realism import context_features

REPO = Path(__file__).resolve().parents[1]
SIZES = ("small", "medium", "large")
#: (column, feature of context_features, format)
FEATURES = (
    ("contrast HU", "rel_contrast_hu", "{:+.0f}"),
    ("rim HU", "ctx_rim_hu", "{:.0f}"),
    ("core HU", "ctx_core_hu", "{:.0f}"),
    ("noise ratio", "rel_noise_ratio", "{:.2f}"),
    ("heterogeneity HU", "ctx_heterogeneity_hu", "{:.1f}"),
    ("spread p90-p10 HU", "ctx_spread_hu", "{:.0f}"),
    ("edge width mm", "ctx_edge_width_mm", "{:.2f}"),
)
LIVER, TUMOR = 1, 2  # the LiTS convention of IRCAD 1.17's label


def measure(image: np.ndarray, tumor: np.ndarray, organ: np.ndarray, spacing) -> dict[str, float]:
    """The context features of one tumor, in its box grown by 15 mm."""
    pad = [int(np.ceil(15.0 / s)) for s in spacing]
    idx = np.argwhere(tumor)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, tumor.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    return context_features(image[box], tumor[box], organ[box] & ~tumor[box], spacing)


def cell(values: list[float], fmt: str) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)])
    if not len(v):
        return "-"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"{fmt.format(med)} [{fmt.format(q1)}, {fmt.format(q3)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_generator_options(parser)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    case = args.data / "ircadb01_p17"
    ct = load_image(case / "ircadb01_p17_ct.nii.gz")
    seg = load_label(case / "ircadb01_p17_label.nii.gz")
    organ = np.isin(seg.array, (LIVER, TUMOR))
    real_tumors = seg.array == TUMOR
    header = "| source | size | n | " + " | ".join(c for c, _, _ in FEATURES) + " | s per tumor |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    components, n = ndi.label(real_tumors, structure=np.ones((3, 3, 3), bool))
    rows = [measure(ct.array, components == i, organ, ct.spacing_mm) for i in range(1, n + 1)]
    print(
        f"| real (IRCAD 1.17) | large | {n} | "
        + " | ".join(cell([r[f] for r in rows], fmt) for _, f, fmt in FEATURES)
        + " | - |"
    )
    generators = generators_from(args, args.device)
    for name, generator in generators.items():
        for size in SIZES:
            rows, seconds = [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = synthesize_case(
                        ct.array,
                        seg.array,
                        spacing_mm=ct.spacing_mm,
                        label_map="lits",
                        organ="liver",
                        count=1,
                        size=size,
                        generator=generator,
                        rng=seed,
                        affine=ct.affine,
                        exclude_labels=(TUMOR,),
                        exclude_margin_mm=10.0,
                    )
                seconds.append(time.perf_counter() - start)
                new = (out.label == TUMOR) & ~real_tumors
                if new.any():
                    rows.append(measure(out.image, new, organ & ~real_tumors, ct.spacing_mm))
            print(
                f"| {name} | {size} | {len(rows)} | "
                + " | ".join(cell([r[f] for r in rows], fmt) for _, f, fmt in FEATURES)
                + f" | {np.median(seconds):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
