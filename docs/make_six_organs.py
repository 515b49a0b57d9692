"""Render docs/six_organs.png: wall tumors of the colon and the esophagus, and a uterus tumor.

Usage: .venv/bin/python docs/make_six_organs.py [--data ../shared/data] [--out docs/six_organs.png]

Rows: a colon wall tumor in the TotalSegmentator example (3 mm, plain CT; large, annular: the
"apple core"), an esophagus wall tumor and a uterus tumor in the phantom (2 x 2 x 2.5 mm,
portal-venous). Columns: the axial slice through the tumor's middle; the view along the tube
(the scan straightened along the tumor's centreline and cut lengthwise through it, see
tumorsynth.previews_wall; for the uterus the coronal slice); the same view of the healthy scan
before synthesis. The seeds are fixed (``ROWS``): they were picked to show one annular and one
eccentric wall tumor; any other seed gives another tumor of the same rules.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tumorsynth.io import load_image, load_label
from tumorsynth.io.label_maps import OUTPUT_LABELS
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines import TumorRequest, synthesize_case
from tumorsynth.previews import draw_title, render_tumor_montage, save_png
from tumorsynth.previews_wall import record_crop_mm, record_walls, render_tube_section

HERE = Path(__file__).resolve().parent
TILE = 300
#: (organ, size class, synthesis seed, scan): "totalseg" or a phantom seed.
ROWS = (
    ("colon", "large", 6, "totalseg"),
    ("esophagus", "small", 0, 0),
    ("uterus", "medium", 0, 0),
)


def load_scan(scan, data: Path):
    """(image, label, label-map name, scan title) of the TotalSegmentator example or a phantom."""
    if scan == "totalseg":
        folder = data / "totalseg_example"
        ct, seg = (
            load_image(folder / "example_ct_sm.nii.gz"),
            load_label(folder / "example_seg.nii.gz"),
        )
        return ct, seg, "totalsegmentator", "TotalSegmentator example, 3 mm, plain"
    ct, seg = make_phantom(int(scan))
    return ct, seg, "phantom", "phantom, 2 x 2 x 2.5 mm, portal venous"


def row(organ: str, size: str, seed: int, scan, data: Path) -> Image.Image:
    """One row: axial, along the tube (or coronal), the same view before; titled."""
    ct, seg, label_map, scan_title = load_scan(scan, data)
    out = synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map=label_map,
        requests=[TumorRequest(organ, 1, size)],
        rng=seed,
        affine=ct.affine,
    )
    (record,) = out.records
    (wall,) = record_walls(out.records)
    tumor_ids = [record.tumor_label]
    organ_ids = [OUTPUT_LABELS.id_of(organ)]
    healthy = np.zeros_like(out.label)  # no contours on the scan before
    crop = record_crop_mm(record, wall)

    def planes(image, label, ids) -> np.ndarray:
        """Axial and coronal tiles through the tumor's centre (one tile high, two wide)."""
        montage = render_tumor_montage(
            image, label, ct.spacing_mm, [record.center_vox], tumor_ids=ids[0],
            organ_ids=ids[1], affine=ct.affine, crop_mm=crop, tile_px=TILE,
        )  # fmt: skip
        return np.asarray(montage)

    def along(image, label, ids) -> np.ndarray:
        assert wall is not None
        tile = render_tube_section(
            image, label, ct.spacing_mm, wall, tumor_ids=ids[0], organ_ids=ids[1],
            affine=ct.affine, tile_px=TILE,
        )  # fmt: skip
        return np.asarray(tile)

    after = planes(out.image, out.label, (tumor_ids, organ_ids))
    if wall is not None:
        beside = along(out.image, out.label, (tumor_ids, organ_ids))
        before = along(ct.array, healthy, ([], []))
        shape = f"L {wall.length_mm:.0f} mm, wall {wall.thickness_mm:.0f} mm thick, " + (
            "annular" if wall.annular else f"eccentric ({wall.arc_deg:.0f} deg)"
        )
    else:
        beside = after[:, TILE:]
        before = planes(ct.array, healthy, ([], []))[:, TILE:]
        shape = f"d {record.diameter_mm:.0f} mm (equivalent sphere)"
    tiles = Image.fromarray(np.concatenate([after[:, :TILE], beside, before], axis=1))
    draw_title(tiles, f"{organ}, {size}: {shape}", (4, 3), TILE)
    draw_title(tiles, scan_title, (4, TILE - 40), TILE)
    return tiles


def header() -> Image.Image:
    strip = Image.new("RGB", (3 * TILE, 26))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=15)
    for col, text in enumerate(
        ("axial, with tumor", "along the tube (uterus: coronal)", "same view, healthy scan")
    ):
        draw.text((col * TILE + 6, 4), text, fill=(255, 255, 255), font=font)
    return strip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--out", default=str(HERE / "six_organs.png"))
    args = parser.parse_args()
    rows = [row(*spec, data=Path(args.data)) for spec in ROWS]
    top = header()
    figure = Image.new("RGB", (3 * TILE, top.height + len(rows) * TILE))
    figure.paste(top, (0, 0))
    for i, tiles in enumerate(rows):
        figure.paste(tiles, (0, top.height + i * TILE))
    path = save_png(figure, args.out)
    print(path, f"{path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
