"""Render docs/realism_before_after.png: IRCAD 1.17's real liver tumors, and synthetic ones put
into the same scan by heuristic generator 1.0 (before issue 10) and 1.1 (after).

The synthetic runs are ``tumorsynth synthesize`` folders made from 1.17 (benchmarks/RESULTS.md,
"Realism": 12 large and 24 medium liver tumors per generator version). Each tile is the axial
slice through a tumor's centre, cropped to its box plus 10 mm, liver window W150 L60.

Usage: .venv/bin/python docs/make_realism_figure.py --before RUN [RUN ...] --after RUN [RUN ...]
           [--data ../shared/data] [--per-row 6] [--out docs/realism_before_after.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import cc3d
import numpy as np

from tumorsynth.io import load_image, load_label
from tumorsynth.io.records import read_manifest
from tumorsynth.previews import window_to_uint8
from tumorsynth.realism.plots import tumor_slice

HERE = Path(__file__).resolve().parent
LEVEL, WIDTH = 60.0, 150.0


def components(mask: np.ndarray, min_voxels: int = 200) -> list[SimpleNamespace]:
    """Centre (voxels) and bounding box of each 26-connected component of ``mask``."""
    cc = cc3d.connected_components(mask, connectivity=26)
    out = []
    for label, box in enumerate(cc3d.statistics(cc)["bounding_boxes"][1:], start=1):
        part = cc[box] == label
        if part.sum() < min_voxels:
            continue
        idx = np.argwhere(part) + [s.start for s in box]
        bbox = tuple((int(s.start), int(s.stop)) for s in box)
        out.append(SimpleNamespace(center_vox=tuple(idx.mean(axis=0)), bbox=bbox, n=len(idx)))
    return out


def tiles_of_run(runs: list[Path], count: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The first ``count`` synthetic tumors of the runs, alternating between runs."""
    records = [read_manifest(run / "manifest.jsonl") for run in runs]
    picked = []
    for k in range(max(len(r) for r in records)):
        for run, recs in zip(runs, records):
            if k < len(recs) and len(picked) < count:
                picked.append((run, recs[k]))
    tiles = []
    for run, record in picked:
        image = load_image(run / record.image_path)
        label = load_label(run / record.label_path).array
        source = load_label(Path(record.source_label)).array
        tumor = (label == 2) & (source != 2)  # the synthetic tumor, not 1.17's own
        (part,) = sorted(components(tumor), key=lambda c: -c.n)[:1]
        hu, mask = tumor_slice(
            image.array, tumor, part, 10.0, image.spacing_mm, affine=image.affine
        )
        tiles.append((hu, mask, f"{record.size_class}, {record.volume_ml:.0f} mL"))
    return tiles


def real_tiles(data: Path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    folder = data / "ircadb01_p17"
    image = load_image(folder / "ircadb01_p17_ct.nii.gz")
    tumor = load_label(folder / "ircadb01_p17_label.nii.gz").array == 2
    spacing = image.spacing_mm
    tiles = []
    for part in sorted(components(tumor), key=lambda c: -c.n):
        hu, mask = tumor_slice(image.array, tumor, part, 10.0, spacing, affine=image.affine)
        tiles.append((hu, mask, f"real, {part.n * float(np.prod(spacing)) / 1000:.0f} mL"))
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", nargs="+", type=Path, required=True)
    parser.add_argument("--after", nargs="+", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--per-row", type=int, default=6)
    parser.add_argument("--out", type=Path, default=HERE / "realism_before_after.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        ("IRCAD 1.17, real", real_tiles(args.data)),
        ("heuristic 1.0 (before)", tiles_of_run(args.before, args.per_row)),
        ("heuristic 1.1 (after)", tiles_of_run(args.after, args.per_row)),
    ]
    n = args.per_row
    figure, axes = plt.subplots(len(rows), n, figsize=(1.9 * n, 2.15 * len(rows)), dpi=90)
    for r, (name, tiles) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles):
                ax.set_axis_off()
                continue
            hu, mask, caption = tiles[c]
            ax.imshow(window_to_uint8(hu, LEVEL, WIDTH), cmap="gray", vmin=0, vmax=255)
            ax.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=0.5)
            ax.set_xlabel(caption, fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=8, fontweight="bold")
    figure.suptitle(
        "Liver tumors in IRCAD 1.17: real, and synthetic ones put into the same scan "
        f"(axial, W{WIDTH:g} L{LEVEL:g}, red: tumor outline, crops of the tumor box + 10 mm)",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
