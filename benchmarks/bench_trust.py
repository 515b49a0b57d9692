"""What the safety checks of issue 8 cost, on IRCAD patient 1.7 (512 x 512 x 151, native spacing).

Usage: .venv/bin/python benchmarks/bench_trust.py [--data ../shared/data] [--cases 4]
Prints markdown for benchmarks/RESULTS.md:

1. per case: loading the CT and label, hashing both sources (sha256, pinned in every record and
   checked on resume and replay), and the label-vs-map check (organ volume, HU, side);
2. a dataset through the CLI: a fresh run, a resume with nothing left to do (the lock, run.json,
   and the size + sha256 check of every finished case's sources), and a replay of the manifest
   (record checks, source hashes, re-measured tumors).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median

from bench_synthesis import (  # benchmarks/ is the script's folder
    BIN,
    IRCAD_MAP,
    REPO,
    linked_dataset,
    machine_line,
)

from tumorsynth.io.identity import source_sha256
from tumorsynth.io.label_maps import resolve_label_map
from tumorsynth.io.nifti import load_image, load_label
from tumorsynth.organs.label_check import check_label_map, measure_label

DATA = REPO.parent / "shared" / "data"


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return median(times), value


def per_case(data: Path) -> list[str]:
    folder = data / "ircadb01_p07"
    ct_path, label_path = folder / "ircadb01_p07_ct.nii.gz", folder / "ircadb01_p07_label.nii.gz"
    t_load, loaded = timed(lambda: (load_image(ct_path), load_label(label_path)))
    ct, seg = loaded  # type: ignore[misc]
    t_hash, _ = timed(lambda: (source_sha256(ct_path), source_sha256(label_path)))
    label_map = resolve_label_map(IRCAD_MAP)

    def check() -> object:
        stats = measure_label(seg.array, seg.affine, ct.array, where=str(label_path))
        return check_label_map(
            seg.array,
            label_map,
            affine=seg.affine,
            image=ct.array,
            organs=["liver", "kidney"],
            where=str(label_path),
            stats=stats,
        )

    t_check, _ = timed(check)
    size_mb = (ct_path.stat().st_size + label_path.stat().st_size) / 1e6
    return [
        "| step | s per case |",
        "|---|---|",
        f"| load CT + label (nibabel, gzip) | {t_load:.3f} |",
        f"| sha256 of both sources ({size_mb:.0f} MB) | {t_hash:.3f} |",
        f"| label check against the map (volume, HU, side, preset scoring) | {t_check:.3f} |",
    ]


def cli(*argv: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(BIN / "tumorsynth"), *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def dataset_runs(data: Path, n_cases: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root, label_map = linked_dataset(data, Path(tmp), n_cases)
        out = Path(tmp) / "out"
        args = (
            "synthesize", "--dataset", str(root), "--label-map", str(label_map),
            "--organ", "liver", "--count", "5", "--size", "small", "--out", str(out),
            "--no-progress",
        )  # fmt: skip
        fresh = cli(*args)
        resume = cli(*args)
        replay = cli("replay", str(out / "manifest.jsonl"), "--out", str(Path(tmp) / "replayed"))
    return [
        "| run | cases | wall (s) | s per case |",
        "|---|---|---|---|",
        f"| fresh, 1 worker | {n_cases} | {fresh:.1f} | {fresh / n_cases:.2f} |",
        f"| resume, nothing left to do | {n_cases} | {resume:.1f} | {resume / n_cases:.2f} |",
        f"| replay of the manifest | {n_cases} | {replay:.1f} | {replay / n_cases:.2f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--cases", type=int, default=4)
    args = parser.parse_args()
    data = Path(args.data)
    print(machine_line() + "\n")
    print("\n".join(per_case(data)) + "\n")
    print("\n".join(dataset_runs(data, args.cases)))


if __name__ == "__main__":
    main()
