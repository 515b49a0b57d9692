"""FROC cost: ``case_froc`` (every one of the 255 probability levels at once) against
``match_lesions`` called at each level, on IRCAD 1.17's label with a noisy probability map; the
false-positive counts of both are checked equal at every level.

Usage: .venv/bin/python benchmarks/bench_froc.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from tumorsynth.box import Box
from tumorsynth.evaluation.froc import case_froc
from tumorsynth.evaluation.lesions import match_lesions
from tumorsynth.io.nifti import load_label

REPO = Path(__file__).resolve().parents[1]


def noisy_probabilities(tumor: np.ndarray, organ: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 levels: the tumors blurred (sigma 3 voxels) plus smoothed noise inside the organ."""
    rng = np.random.default_rng(seed)
    blurred = ndi.gaussian_filter(tumor.astype(np.float32), 3.0)
    noise = ndi.gaussian_filter(rng.standard_normal(tumor.shape).astype(np.float32), 4.0)
    noise /= noise.std()
    p = np.clip(0.9 * blurred + 0.25 * np.maximum(noise - 1.5, 0) * organ, 0, 1)
    return np.rint(255 * p).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    seg = load_label(args.data / "ircadb01_p17" / "ircadb01_p17_label.nii.gz")
    tumor, organ = seg.array == 2, seg.array >= 1
    levels = noisy_probabilities(tumor, organ)
    start = time.perf_counter()
    froc = case_froc(levels, tumor, case_id="p17", organ="liver")
    at_once = time.perf_counter() - start
    box = Box.of_mask(levels > 0, (0, 0, 0))
    crop, truth = levels[box.slices], tumor[box.slices]
    start = time.perf_counter()
    for level in range(1, 256):
        matched = match_lesions(crop >= level, truth, seg.spacing_mm)
        assert matched.fp_components == froc.fp_by_level[level]
    per_level = time.perf_counter() - start
    print(
        f"crop {crop.shape}, {np.count_nonzero(levels)} non-zero voxels, FP components at "
        f"0.05 / 0.5: {froc.fp_by_level[13]} / {froc.fp_by_level[128]}\n"
        f"case_froc, all 255 levels (whole volume): {at_once:.2f} s\n"
        f"match_lesions at each level (on the crop): {per_level:.1f} s"
    )


if __name__ == "__main__":
    main()
