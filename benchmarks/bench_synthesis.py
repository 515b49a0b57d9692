"""Speed and memory of tumor synthesis on IRCAD patient 1.7 at native spacing (512x512x151,
0.78 x 0.78 x 1.6 mm).

Usage: .venv/bin/python benchmarks/bench_synthesis.py [--data ../shared/data] [--repeats 5]
Prints markdown for benchmarks/RESULTS.md. Sections:

1. marginal cost per added tumor by size class (see :func:`marginal`);
2. a whole case in memory (organ analysis + remapping + 3-10 tumors), against the reference's
   resample (7 s) + per-case synthesis (355-637 ms) on this kind of machine;
3. start-up time of ``tumorsynth --help`` and of importing the pipeline;
4. peak memory of one case in a fresh process (RSS and numpy allocations);
5. a dataset run through the CLI with --workers 1 and 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IRCAD_MAP = {"liver": 1, "kidney": 5}


def load(data: Path):
    from tumorsynth.io import load_image, load_label

    ct = load_image(data / "ircadb01_p07" / "ircadb01_p07_ct.nii.gz")
    seg = load_label(data / "ircadb01_p07" / "ircadb01_p07_label.nii.gz")
    return ct, seg


def case_time(ct, seg, repeats: int, **kw) -> tuple[float, list]:
    from tumorsynth.pipelines import synthesize_case

    times, out = [], None
    for r in range(repeats):
        start = time.perf_counter()
        out = synthesize_case(
            ct.array,
            seg.array,
            spacing_mm=ct.spacing_mm,
            label_map=IRCAD_MAP,
            affine=ct.affine,
            rng=100 + r,
            **kw,
        )
        times.append(time.perf_counter() - start)
    return median(times), out.records if out else []


def marginal(ct, seg, repeats: int) -> list[str]:
    """Cost of N more tumors: case with 1 tiny + N tumors minus the case with the 1 tiny tumor
    (both build the organ analysis once, so it cancels out), divided by N."""
    from tumorsynth.pipelines import TumorRequest

    rows = [
        "| organ | size | N | case with 1 tiny + N (ms) | case with 1 tiny (ms) | "
        "marginal ms/tumor | mean diameter (mm) |",
        "|---|---|---|---|---|---|---|",
    ]
    counts = {
        "liver": {"tiny": 10, "small": 10, "medium": 4, "large": 1},
        "kidney": {"tiny": 4, "small": 3, "medium": 1, "large": 1},
    }
    for organ, sizes in counts.items():
        base, _ = case_time(ct, seg, repeats, requests=[TumorRequest(organ, 1, "tiny")])
        for size, n in sizes.items():
            t, records = case_time(
                ct,
                seg,
                repeats,
                requests=[TumorRequest(organ, 1, "tiny"), TumorRequest(organ, n, size)],
            )
            diam = np.mean(
                [r.diameter_mm for r in records if r.size_class == size or size == "tiny"]
            )
            rows.append(
                f"| {organ} | {size} | {n} | {t * 1e3:.0f} | {base * 1e3:.0f} | "
                f"{(t - base) / n * 1e3:.1f} | {diam:.1f} |"
            )
    return rows


def whole_case(ct, seg, repeats: int) -> list[str]:
    rows = ["| case | tumors | time (ms) |", "|---|---|---|"]
    for label, kw in (
        ("liver, 3 small", dict(organ="liver", count=3, size="small")),
        ("liver, 10 small", dict(organ="liver", count=10, size="small")),
        ("liver, 6 mixed sizes", dict(organ="liver", count=6, size="mixed")),
    ):
        t, records = case_time(ct, seg, repeats, **kw)
        rows.append(f"| {label} | {len(records)} | {t * 1e3:.0f} |")
    return rows


def startup(repeats: int) -> list[str]:
    def wall(cmd):
        ts = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            ts.append(time.perf_counter() - start)
        return median(ts)

    return [
        "| command | wall time (s) |",
        "|---|---|",
        f"| `tumorsynth --help` | {wall([str(BIN / 'tumorsynth'), '--help']):.3f} |",
        f"| `python -c 'import tumorsynth.pipelines'` | "
        f"{wall([sys.executable, '-c', 'import tumorsynth.pipelines']):.3f} |",
    ]


_MEMORY_PROBE = r"""
import json, sys, tracemalloc
from pathlib import Path

def status(key):  # VmRSS / VmHWM of this process (ru_maxrss would include the parent's, pre-exec)
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

from tumorsynth.pipelines import synthesize_case
from tumorsynth.io import load_image, load_label
data = Path(sys.argv[1])
after_imports = status("VmHWM")
ct = load_image(data / "ircadb01_p07" / "ircadb01_p07_ct.nii.gz")
seg = load_label(data / "ircadb01_p07" / "ircadb01_p07_label.nii.gz")
after_load = status("VmRSS")
tracemalloc.start()
out = synthesize_case(ct.array, seg.array, spacing_mm=ct.spacing_mm, label_map={"liver": 1, "kidney": 5},
                      organ="liver", count=6, size="mixed", rng=0)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"rss_after_imports_mb": after_imports, "rss_after_load_mb": after_load,
                  "rss_peak_mb": status("VmHWM"), "numpy_peak_during_synthesis_mb": peak / 2**20,
                  "case_arrays_mb": (ct.array.nbytes + seg.array.nbytes) / 2**20}))
"""


def memory(data: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(data)], check=True, capture_output=True, text=True
    )
    m = json.loads(result.stdout)
    target = 2 * m["case_arrays_mb"] + 300
    return [
        "| quantity | MB |",
        "|---|---|",
        f"| case's own arrays (int16 CT + uint8 label) | {m['case_arrays_mb']:.0f} |",
        f"| process RSS after imports (peak) | {m['rss_after_imports_mb']:.0f} |",
        f"| process RSS with the case loaded | {m['rss_after_load_mb']:.0f} |",
        f"| process peak RSS, whole run (load included) | {m['rss_peak_mb']:.0f} |",
        f"| numpy allocations during synthesis (tracemalloc peak) | {m['numpy_peak_during_synthesis_mb']:.0f} |",
        f"| peak RSS above the imported interpreter | {m['rss_peak_mb'] - m['rss_after_imports_mb']:.0f} |",
        f"| target: 2 x arrays + 300 | {target:.0f} |",
    ]


def linked_dataset(data: Path, tmp: Path, n_cases: int) -> tuple[Path, Path]:
    """An nnU-Net folder of ``n_cases`` names for IRCAD 1.7 (symbolic links, no copies) and the
    label-map JSON of its labels."""
    root = tmp / "Dataset001_P07"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n_cases):
        os.symlink(
            data / "ircadb01_p07" / "ircadb01_p07_ct.nii.gz",
            root / "imagesTr" / f"p07copy{i}_0000.nii.gz",
        )
        os.symlink(
            data / "ircadb01_p07" / "ircadb01_p07_label.nii.gz",
            root / "labelsTr" / f"p07copy{i}.nii.gz",
        )
    label_map = tmp / "map.json"
    label_map.write_text(json.dumps(IRCAD_MAP))
    return root, label_map


def dataset_run(data: Path, n_cases: int = 4) -> list[str]:
    rows = ["| workers | cases | wall (s) | s per case |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        root, label_map = linked_dataset(data, Path(tmp), n_cases)
        for workers in (1, 2):
            out = Path(tmp) / f"out{workers}"
            start = time.perf_counter()
            subprocess.run(
                [
                    str(BIN / "tumorsynth"),
                    "synthesize",
                    "--dataset",
                    str(root),
                    "--label-map",
                    str(label_map),
                    "--organ",
                    "liver",
                    "--count",
                    "5",
                    "--size",
                    "small",
                    "--workers",
                    str(workers),
                    "--out",
                    str(out),
                    "--no-progress",
                ],
                check=True,
                capture_output=True,
            )
            wall = time.perf_counter() - start
            rows.append(f"| {workers} | {n_cases} | {wall:.1f} | {wall / n_cases:.2f} |")
            shutil.rmtree(out)
    return rows


def machine_line() -> str:
    """The machine a benchmark ran on, for RESULTS.md."""
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = Path(args.data)
    print(machine_line())
    ct, seg = load(data)
    for title, rows in (
        ("Marginal cost per tumor (IRCAD 1.7, native spacing)", marginal(ct, seg, args.repeats)),
        ("Whole case in memory", whole_case(ct, seg, args.repeats)),
        ("Start-up", startup(args.repeats)),
        ("Peak memory, one case (6 mixed liver tumors)", memory(data)),
        (
            "Dataset through the CLI (5 small liver tumors per case, I/O included)",
            dataset_run(data),
        ),
    ):
        print(f"\n### {title}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
