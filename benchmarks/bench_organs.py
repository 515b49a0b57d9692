"""Speed of tumors in the organs added by issue 15: colon and esophagus (wall tumors) and uterus.

Usage: .venv/bin/python benchmarks/bench_organs.py [--data ../shared/data] [--repeats 7]
Prints markdown for benchmarks/RESULTS.md. Scans: the colon in the TotalSegmentator example
(122 x 101 x 30 at 3 mm, label 20), the esophagus and uterus in the phantom at its default
2 x 2 x 2.5 mm (seed 0); the liver of the same phantom as a solid reference. Sections:

1. marginal cost per added tumor by size class. :mod:`bench_synthesis` subtracts a case with
   1 tiny tumor from one with 1 tiny + N, so the organ analysis cancels out; a tube holds one
   wall tumor (two rarely fit the phantom's 3-5 cm esophagus, nor two medium ones the example's
   9 cm of colon), so here the analysis is taken out instead: both cases get the organ's
   analysis ready-made (``synthesize_case(contexts=...)``, warmed by one untimed call, which
   also traces the tube's centreline), and the case with 1 tumor is compared with the case
   asking for 0 tumors of that organ (same remapping of labels, same output arrays), timed
   in pairs (median of the differences);
2. the organ analysis itself: a case with 1 tiny tumor from scratch minus the same case with
   the analysis ready-made (for a tube: the centreline traced by skeletonization);
3. the previews: the view along the tube of one wall tumor, and the whole record montage;
4. ``run_demo`` on the phantom with the demo's requests before issue 15 (liver, pancreas,
   kidney: 7 tumors) and now (six organs: 10 tumors), previews included.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ("tiny", "small", "medium", "large")
#: organ -> scan; the esophagus of the phantom holds tiny and small wall tumors only (its
#: inscribed radius is ~9 mm over 3-5 cm: medium and large tumors are refused as too long).
ORGANS = {
    "colon": ("totalseg", SIZES),
    "esophagus": ("phantom", ("tiny", "small")),
    "uterus": ("phantom", SIZES),
    "liver": ("phantom", SIZES),
}


def scans(data: Path) -> dict[str, tuple]:
    from tumorsynth.io import load_image, load_label
    from tumorsynth.phantom import make_phantom

    folder = data / "totalseg_example"
    ts = (
        load_image(folder / "example_ct_sm.nii.gz"),
        load_label(folder / "example_seg.nii.gz"),
        "totalsegmentator",
    )
    return {"totalseg": ts, "phantom": (*make_phantom(0), "phantom")}


def timed_case(scan, requests, seed: int, contexts=None):
    from tumorsynth.pipelines import synthesize_case

    ct, seg, label_map = scan
    start = time.perf_counter()
    out = synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map=label_map,
        requests=requests,
        rng=seed,
        affine=ct.affine,
        contexts=contexts,
    )
    return time.perf_counter() - start, out


def ready_context(scan, organ: str):
    """The organ's analysis, made once and warmed by one untimed tumor (lazy parts, tracing)."""
    from tumorsynth.io.label_maps import resolve_label_map
    from tumorsynth.organs.context_cache import organ_context
    from tumorsynth.pipelines import TumorRequest

    ct, seg, label_map = scan
    context = organ_context(ct.array, seg.array, organ, resolve_label_map(label_map), ct.spacing_mm)
    timed_case(scan, [TumorRequest(organ, 1, "tiny")], 99, {organ: context})
    return {organ: context}


def marginal(all_scans, repeats: int) -> list[str]:
    from tumorsynth.errors import PlacementError
    from tumorsynth.pipelines import TumorRequest
    from tumorsynth.previews_wall import record_walls

    rows = [
        "| organ | scan | size | case with 1 tumor (ms) | case with 0 (ms) | ms per tumor "
        "| eq. diameter (mm) | length x thickness (mm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for organ, (scan_name, sizes) in ORGANS.items():
        scan = all_scans[scan_name]
        contexts = ready_context(scan, organ)
        zero = [TumorRequest(organ, 0, "tiny")]
        for size in sizes:
            # Each timed case right after its own baseline (same seed): the difference is what
            # one tumor adds, and the load of a shared machine drifts less within a pair.
            times, bases, records, refused = [], [], [], 0
            for r in range(3 * repeats):  # seeds whose tumor does not fit are counted, not timed
                base = timed_case(scan, zero, 100 + r, contexts)[0]
                try:
                    t, out = timed_case(scan, [TumorRequest(organ, 1, size)], 100 + r, contexts)
                except PlacementError:
                    refused += 1
                    continue
                times.append(t)
                bases.append(base)
                records += out.records
                if len(times) == repeats:
                    break
            added = median(t - b for t, b in zip(times, bases))
            walls = [w for w in record_walls(records) if w is not None]
            shape = (
                f"{np.mean([w.length_mm for w in walls]):.0f} x "
                f"{np.mean([w.thickness_mm for w in walls]):.1f}"
                if walls
                else "-"
            )
            note = f" ({refused} of {refused + len(times)} draws refused)" if refused else ""
            rows.append(
                f"| {organ} | {scan_name} | {size}{note} | {median(times) * 1e3:.0f} | "
                f"{median(bases) * 1e3:.0f} | {added * 1e3:.1f} | "
                f"{np.mean([r.diameter_mm for r in records]):.1f} | {shape} |"
            )
    return rows


def analysis(all_scans, repeats: int) -> list[str]:
    from tumorsynth.pipelines import TumorRequest

    rows = [
        "| organ | scan | case, analysis from scratch (ms) | case, analysis ready (ms) | "
        "analysis (ms) |",
        "|---|---|---|---|---|",
    ]
    for organ, (scan_name, _) in ORGANS.items():
        scan = all_scans[scan_name]
        request = [TumorRequest(organ, 1, "tiny")]
        cold = median(timed_case(scan, request, 100 + r)[0] for r in range(repeats))
        contexts = ready_context(scan, organ)
        warm = median(timed_case(scan, request, 100 + r, contexts)[0] for r in range(repeats))
        rows.append(
            f"| {organ} | {scan_name} | {cold * 1e3:.0f} | {warm * 1e3:.0f} | "
            f"{(cold - warm) * 1e3:.0f} |"
        )
    return rows


def previews(all_scans, repeats: int) -> list[str]:
    from tumorsynth.pipelines import TumorRequest
    from tumorsynth.previews_wall import record_walls, render_record_montage, render_tube_section

    rows = ["| preview | scan | ms |", "|---|---|---|"]
    for organ, scan_name in (("colon", "totalseg"), ("esophagus", "phantom")):
        ct, _, _ = scan = all_scans[scan_name]
        _, out = timed_case(scan, [TumorRequest(organ, 1, "small")], 100)
        (wall,) = record_walls(out.records)
        times, whole = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            render_tube_section(
                out.image, out.label, ct.spacing_mm, wall, tumor_ids=[8, 10], affine=ct.affine
            )
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            render_record_montage(
                out.image, out.label, ct.spacing_mm, out.records, affine=ct.affine
            )
            whole.append(time.perf_counter() - start)
        rows.append(
            f"| view along the {organ} (256 px) | {scan_name} | {median(times) * 1e3:.1f} |"
        )
        rows.append(f"| montage of that case (1 row) | {scan_name} | {median(whole) * 1e3:.1f} |")
    return rows


def demo(repeats: int) -> list[str]:
    from tumorsynth.pipelines import TumorRequest, demo

    before = (
        TumorRequest("liver", 4, "mixed"),
        TumorRequest("pancreas", 1, "small"),
        TumorRequest("kidney", 2, "medium"),
    )
    now = demo.PHANTOM_REQUESTS
    rows = ["| demo requests | tumors | run_demo (s) |", "|---|---|---|"]
    for name, requests in (("before issue 15 (3 organs)", before), ("six organs", now)):
        times, n = [], 0
        for r in range(repeats):
            demo.PHANTOM_REQUESTS = requests
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    result = demo.run_demo(Path(tmp) / "out", seed=r, progress=False)
                    times.append(time.perf_counter() - start)
                    n = len(result.records)
            finally:
                demo.PHANTOM_REQUESTS = now
        rows.append(f"| {name} | {n} | {median(times):.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the scans' analyses warn about nothing timed here
    all_scans = scans(Path(args.data))
    for title, rows in (
        ("Marginal cost per added tumor (organ analysis ready)", marginal(all_scans, args.repeats)),
        ("Organ analysis per case", analysis(all_scans, args.repeats)),
        ("Previews", previews(all_scans, args.repeats)),
        ("Demo", demo(max(1, args.repeats // 2))),
    ):
        print(f"\n### {title}\n")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
