"""Render docs/synthetic_tumors.png: synthetic tumors in each organ of the real scans.

Usage: .venv/bin/python docs/make_figure.py [--data ../shared/data] [--seed 0]
       .venv/bin/python docs/make_figure.py --generator diffusion --checkpoint DIR \
           --out docs/diffusion_tumors.png     # a learned generator (diffusion, adversarial)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from tumorsynth.generators import get_generator
from tumorsynth.io import load_image, load_label
from tumorsynth.io.label_maps import OUTPUT_LABELS
from tumorsynth.pipelines import TumorRequest, synthesize_case
from tumorsynth.previews import render_tumor_montage, save_png

HERE = Path(__file__).resolve().parent


def panel(ct, seg, label_map, requests, seed, scan, generator="heuristic"):
    out = synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map=label_map,
        requests=requests,
        rng=seed,
        affine=ct.affine,
        generator=generator,
    )
    titles = [
        f"{scan}: {r.organ}, {r.size_class}, d={r.diameter_mm:.0f} mm, {r.contrast_hu:+.0f} HU"
        + (" (cyst)" if r.appearance.get("kind") == "cyst" else "")
        for r in out.records
    ]
    return render_tumor_montage(
        out.image,
        out.label,
        ct.spacing_mm,
        [r.center_vox for r in out.records],
        tumor_ids=[2, 4, 6],
        organ_ids=[OUTPUT_LABELS.id_of(o) for o in ("liver", "pancreas", "kidney")],
        affine=ct.affine,
        titles=titles,
        crop_mm=[max(45.0, 2.6 * r.diameter_mm) for r in out.records],
        max_rows=len(out.records),
        tile_px=200,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator", default="heuristic")
    parser.add_argument("--checkpoint", help="learned generators: their model folder")
    parser.add_argument("--out", default=str(HERE / "synthetic_tumors.png"))
    args = parser.parse_args()
    options = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    generator = get_generator(args.generator, **options)
    data = Path(args.data)
    p07 = (
        load_image(data / "ircadb01_p07/ircadb01_p07_ct.nii.gz"),
        load_label(data / "ircadb01_p07/ircadb01_p07_label.nii.gz"),
    )
    ts = (
        load_image(data / "totalseg_example/example_ct_sm.nii.gz"),
        load_label(data / "totalseg_example/example_seg.nii.gz"),
    )
    panels = [
        panel(
            *p07,
            {"liver": 1, "kidney": 5},
            [
                TumorRequest("liver", 1, "large"),
                TumorRequest("liver", 1, "medium"),
                TumorRequest("liver", 1, "small"),
                TumorRequest("kidney", 1, "medium"),
                TumorRequest("kidney", 1, "small"),
            ],
            args.seed,
            "IRCAD 1.7",
            generator,
        ),
        panel(
            *ts,
            "totalsegmentator",
            [
                TumorRequest("liver", 1, "medium"),
                TumorRequest("pancreas", 1, "small"),
                TumorRequest("kidney", 1, "small"),
            ],
            args.seed,
            "TotalSeg 3 mm",
            generator,
        ),
    ]
    # Two columns of panels side by side keep the figure compact.
    width = sum(p.width for p in panels)
    height = max(p.height for p in panels)
    figure = Image.new("RGB", (width, height))
    x = 0
    for p in panels:
        figure.paste(p, (x, 0))
        x += p.width
    path = save_png(figure, args.out)
    print(path, f"{path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
