"""``tumorsynth demo``: tumors into six organs of the embedded abdominal CT phantom (liver,
pancreas, kidney, and wall tumors of the colon and esophagus, a uterus tumor), or into the organs
a real scan's label holds (--image/--label/--label-map)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tumorsynth.cli._common import add_seed

if TYPE_CHECKING:
    from tumorsynth.io.records import TumorRecord


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="tumorsynth_demo",
        metavar="DIR",
        help="output folder (default ./tumorsynth_demo)",
    )
    add_seed(parser)
    parser.add_argument("--image", help="run on this real CT instead of the phantom")
    parser.add_argument("--label", help="organ labels of --image")
    parser.add_argument(
        "--label-map",
        default=None,
        help="label map of --label (required with --image: a preset or a JSON file)",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import time

    from tumorsynth.pipelines.demo import run_demo

    start = time.perf_counter()
    if args.image is None:
        print(
            "tumorsynth demo: using the embedded PHANTOM, a procedurally generated abdominal CT "
            "(not a patient); pass --image/--label for a real scan"
        )
    demo = run_demo(
        args.out,
        seed=args.seed,
        image=args.image,
        label=args.label,
        label_map=args.label_map,
        progress=not args.no_progress,
    )
    print(
        f"{'organ':<9} {'size':<7} {'diam mm':>8} {'vol mL':>8} {'tumor HU':>9} "
        f"{'organ HU':>9} {'contrast':>9}  kind"
    )
    for r in demo.records:
        print(
            f"{r.organ:<9} {r.size_class:<7} {r.diameter_mm:>8.1f} {r.volume_ml:>8.2f} "
            f"{r.tumor_mean_hu:>9.0f} {r.parenchyma_mean_hu:>9.0f} {r.contrast_hu:>+9.0f}  "
            f"{_kind(r)}"
        )
    organs = len({r.organ for r in demo.records})
    print(
        f"{len(demo.records)} tumors in {organs} organs in {time.perf_counter() - start:.1f} s "
        f"-> {demo.out_dir}/"
    )
    print(
        f"  images: {demo.out_dir}/imagesTr, labels: {demo.out_dir}/labelsTr, "
        f"records: {demo.out_dir}/manifest.jsonl"
    )
    for path in demo.previews:
        print(f"  preview: {path}")
    return 0


def _kind(record: TumorRecord) -> str:
    """Appearance kind; a wall tumor's length x thickness and arc; exophytic."""
    kind = str(record.appearance.get("kind", ""))
    wall = record.shape.get("wall")
    if wall:
        arc = float(wall["arc_deg"])
        around = "annular" if arc >= 360.0 else f"arc {arc:.0f} deg"
        kind += (
            f" wall {float(wall['length_mm']):.0f} x {float(wall['thickness_mm']):.0f} mm {around}"
        )
    return kind + (" exophytic" if record.exophytic else "")
