"""Online synthesis for training: cost per draw and loader throughput, IRCAD 1.7 at 1.5 mm.

Usage: .venv/bin/python benchmarks/bench_online.py [--data ../shared/data] [--draws 40]
       [--seconds 40] [--workers 2]

The healthy scan ircadb01_p07 (label 1 liver; label map ``lits``) goes through the training data
path as ``tumorsynth train`` builds it (``build_datasets``, ``make_loader``): preparation (load,
RAS, resampling to 1.5 mm) cached in memory, then the random part per draw, with 96^3 crops,
``mixed`` tumor sizes, two crops per case. Prints markdown. Sections:

1. the organ analysis of the scan: built, found in memory (what a draw pays for its lookup:
   mask, box and a byte compare), the sha256 of what it reads (the disk cache's key), loaded from
   the disk cache;
2. per draw on one core (one thread): a crop with tumors (``crop_ratios`` 0/0/1), and a crop of
   the training mix (background / organ / tumor crops as ``positive_fraction`` says);
3. the training loader (``make_loader``) with ``--workers`` worker processes: crops per second.

Run it on an older tree (``PYTHONPATH=<old>/src``) for the numbers before: sections that need
what the old tree lacks are left out, and section 2 then times the training mix only (which was
whole-volume synthesis, then ``RandCropByLabelClassesd``).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per process: a draw is timed on one core

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_synthesis import machine_line  # noqa: E402  (benchmarks/ is the script's folder)

REPO = Path(__file__).resolve().parents[1]
CASE = "ircadb01_p07"


def config(data: Path, workers: int, out: Path, **data_settings: object):
    from tumorsynth.training.config import TrainConfig

    case = data / CASE
    settings = {
        "mode": "synthetic",
        "organ": "liver",
        "healthy": [
            {
                "image": str(case / f"{CASE}_ct.nii.gz"),
                "label": str(case / f"{CASE}_label.nii.gz"),
                "label_map": "lits",
            }
        ],
        "val_fraction": 0.0,
        "spacing_mm": [1.5, 1.5, 1.5],
        "tumor_size": "mixed",
        "num_workers": workers,
        **data_settings,
    }
    return TrainConfig.from_dict(
        {
            "name": "bench_online",
            "seed": 0,
            "data": settings,
            "model": {"patch_size": [96, 96, 96]},
            "optim": {"batch_size": 4},
            "train": {"out_dir": str(out)},
        }
    )


def dataset_of(cfg):
    from tumorsynth.training.data import build_datasets, split_cases

    train, val = split_cases(cfg)
    dataset, weights, _ = build_datasets(cfg, train, val, (1.5, 1.5, 1.5))
    return dataset, weights


def ms(seconds: list[float]) -> str:
    return f"{1000 * statistics.median(seconds):.0f}"


def analysis_rows(dataset) -> list[str]:
    """Section 1: the organ analysis of the cached, resampled scan."""
    from tumorsynth.io.label_maps import OUTPUT_LABELS
    from tumorsynth.organs.context_cache import ContextCache, _inputs_of, organ_context

    sample = dataset.datasets[0]._cache[0]
    image = sample["image"].numpy()[0]
    label = sample["label"].numpy()[0]
    spacing = (1.5, 1.5, 1.5)

    def lookup(cache: ContextCache | None) -> float:
        start = time.perf_counter()
        organ_context(image, label, "liver", OUTPUT_LABELS, spacing, cache=cache)
        return time.perf_counter() - start

    built = [lookup(None) for _ in range(3)]
    memory = ContextCache()
    lookup(memory)
    hits = [lookup(memory) for _ in range(10)]
    context = organ_context(image, label, "liver", OUTPUT_LABELS, spacing)
    box = context.bbox
    from tumorsynth.box import Box
    from tumorsynth.organs import LIVER

    organ_box = Box(tuple(b.start for b in box), tuple(b.stop - b.start for b in box))
    inputs = _inputs_of(image, label == 1, spacing, LIVER, organ_box, None, None, 0.0)
    digests = []
    for _ in range(5):
        start = time.perf_counter()
        inputs.digest()
        digests.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        lookup(ContextCache(folder=folder))  # builds and writes the file
        loads = [lookup(ContextCache(folder=folder)) for _ in range(3)]
    analysed = sum(a.nbytes for a in inputs.arrays if a is not None) / 2**20
    return [
        "| step | ms |",
        "|---|---|",
        f"| analysis built (no cache: every draw before) | {ms(built)} |",
        f"| found in memory (mask, box, compare of {analysed:.1f} MiB) | {ms(hits)} |",
        f"| sha256 of the analysed bytes (disk key, on a memory miss) | {ms(digests)} |",
        f"| loaded from the disk cache (new process, memory empty) | {ms(loads)} |",
    ]


def per_draw(dataset, draws: int) -> tuple[list[float], list[float]]:
    """Seconds per crop of ``dataset[0]`` (each call draws its crops), after a warm-up: wall
    clock, and CPU time of this process (what a draw costs a core on a machine others share)."""
    for _ in range(3):
        dataset[0]
    wall, cpu = [], []
    for _ in range(draws):
        start, start_cpu = time.perf_counter(), time.process_time()
        crops = dataset[0]
        wall.append((time.perf_counter() - start) / len(crops))
        cpu.append((time.process_time() - start_cpu) / len(crops))
    return wall, cpu


def draw_rows(data: Path, draws: int, out: Path) -> list[str]:
    """Section 2: one core, one thread."""
    torch.set_num_threads(1)
    rows = [
        "| draw | CPU ms per crop: median | mean | p90 | wall ms: median |",
        "|---|---|---|---|---|",
    ]
    cases = [("crop of the training mix (2 per case)", {})]
    if _has_crop_mode():
        tumor_only = {"positive_fraction": 1.0, "samples_per_case": 1}
        cases.insert(0, ("crop with tumors, 1 per case", tumor_only))
    for name, settings in cases:
        cfg = config(data, 0, out, **settings)
        dataset, _ = dataset_of(cfg)
        if settings:  # every crop a tumor crop: ratios 0 / 1/3 / 2/3 -> 0 / 0 / 1
            chain = dataset.datasets[0].transform.transforms
            synth = next(t for t in chain if hasattr(t, "crops") and t.crops is not None)
            size, _, n = synth.crops
            synth.crops = (size, np.array([0.0, 0.0, 1.0]), n)
        dataset.datasets[0].transform.set_random_state(1)
        wall, cpu = per_draw(dataset, draws)
        mean, p90 = 1000 * float(np.mean(cpu)), 1000 * float(np.percentile(cpu, 90))
        rows.append(f"| {name} | {ms(cpu)} | {mean:.0f} | {p90:.0f} | {ms(wall)} |")
    return rows


def loader_rows(data: Path, workers: int, seconds: float, out: Path) -> list[str]:
    """Section 3: crops per second out of the training loader, after its first batches, and
    the CPU time its workers spent per crop (first batches included): on a machine others
    share, ``workers / CPU time per crop`` is what the loader gives with its cores to itself."""
    import gc
    import resource

    from tumorsynth.training.segmentation import make_loader

    cfg = config(data, workers, out)
    dataset, weights = dataset_of(cfg)
    loader = make_loader(cfg, dataset, weights)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    batches = iter(loader)
    start_all = time.perf_counter()
    total = 0
    for _ in range(2 * workers):  # each worker's first batch builds its analysis
        total += int(next(batches)["image"].shape[0])
    warm = time.perf_counter() - start_all
    crops, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        crops += int(next(batches)["image"].shape[0])
    rate = crops / (time.perf_counter() - start)
    total += crops
    del batches, loader
    gc.collect()  # the workers exit and are waited for: their CPU time is counted
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (used.ru_utime + used.ru_stime) - (children.ru_utime + children.ru_stime)
    per_crop = 1000 * cpu / total
    return [
        "| loader | workers | crops/s | first batches (s) | worker CPU ms per crop | "
        "crops/s with the cores to itself |",
        "|---|---|---|---|---|---|",
        f"| make_loader (MONAI DataLoader) | {workers} | {rate:.1f} | {warm:.1f} | "
        f"{per_crop:.0f} | {workers * 1000 / per_crop:.0f} |",
    ]


def _has_crop_mode() -> bool:
    import inspect

    from tumorsynth.transforms import RandTumorSynthd

    return "crop_size" in inspect.signature(RandTumorSynthd).parameters


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / CASE).is_dir():
        sys.exit(f"{data / CASE}: IRCAD 1.7 not found (pass --data)")
    warnings.simplefilter("ignore")
    print(f"{machine_line()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        sections = []
        if _has_crop_mode():
            dataset, _ = dataset_of(config(data, 0, out))
            sections.append(("Organ analysis of IRCAD 1.7 at 1.5 mm", analysis_rows(dataset)))
            del dataset
        sections.append(("Per draw, one core", draw_rows(data, args.draws, out)))
        sections.append(("Training loader", loader_rows(data, args.workers, args.seconds, out)))
    for title, rows in sections:
        print(f"\n### {title}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
