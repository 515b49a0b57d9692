"""Previews of labelled scans that have no manifest (real tumors, other tools' outputs)."""

from __future__ import annotations

import os
from pathlib import Path

import cc3d
import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import label_mask, resolve_label_map
from tumorsynth.io.nifti import check_same_grid, load_image, load_label
from tumorsynth.previews import render_tumor_montage, save_png

__all__ = ["preview_labelled_scan", "tumor_components"]


def tumor_components(
    label: np.ndarray, tumor_ids: list[int]
) -> list[tuple[tuple[float, ...], int]]:
    """Centres (voxel) and voxel counts of the 26-connected tumor components, largest first."""
    mask = label_mask(label, tumor_ids)
    components = cc3d.connected_components(mask, connectivity=26)
    stats = cc3d.statistics(components)
    out = [
        (tuple(float(c) for c in stats["centroids"][i]), int(stats["voxel_counts"][i]))
        for i in range(1, len(stats["voxel_counts"]))
    ]
    return sorted(out, key=lambda item: -item[1])


def preview_labelled_scan(
    image_path: str | os.PathLike[str],
    label_path: str | os.PathLike[str],
    label_map: str,
    out_dir: str | os.PathLike[str],
    max_tumors: int = 8,
) -> Path:
    """A montage through the largest tumors of a labelled scan -> ``out_dir/<name>_tumors.png``."""
    image = load_image(image_path)
    label = load_label(label_path)
    check_same_grid(image, label)
    lmap = resolve_label_map(label_map)
    tumor_ids = sorted({i for ids in lmap.tumors.values() for i in ids} | set(lmap.generic_tumor))
    organ_ids = sorted({i for ids in lmap.organs.values() for i in ids} | set(lmap.generic_organ))
    found = tumor_components(label.array, tumor_ids)[:max_tumors]
    if not found:
        raise InputError(
            str(label_path),
            f"holds no tumor voxels (ids {tumor_ids} of label map {lmap.name!r})",
            fix="pass the right --label-map",
        )
    voxel_ml = float(np.prod(image.spacing_mm)) / 1000.0
    titles = [f"tumor {i + 1}  {n * voxel_ml:.1f} mL" for i, (_, n) in enumerate(found)]
    img = render_tumor_montage(
        image.array,
        label.array,
        image.spacing_mm,
        [c for c, _ in found],  # type: ignore[misc]
        tumor_ids=tumor_ids,
        organ_ids=organ_ids,
        affine=image.affine,
        titles=titles,
        max_rows=max_tumors,
    )
    name = Path(image_path).name.replace(".nii.gz", "").replace(".nii", "")
    return save_png(img, Path(out_dir) / f"{name}_tumors.png")
