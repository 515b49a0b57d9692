"""Training crops for the adversarial generator: unlabeled healthy scans with a tumor mask drawn by
the core, and crops of annotated real tumors.

A healthy scan needs only its organ mask (any label map). Each scan's organ is analysed once
(:class:`~tumorsynth.organs.context.OrganContext`: where tumors may go, its parenchyma), then
every crop draws a tumor shape and site from the organ profile (:class:`~tumorsynth.shapes.
RandomTumorShape`, the size class from the profile's mixed weights or the one asked for), exactly
as synthesis does, and reads the cube around it on the model's grid (zoomed out as the generator
zooms, so training sees what rendering will). A scan whose organ is absent or has no room for a
tumor is skipped with a warning, never a crash; a run in which no scan is usable is refused.

Hollow organs are read as rendering reads them (:mod:`tumorsynth.generators.model_grid`): a long
wall tumor through one of its windows along the segment (drawn at random), and the lumen inside
the tumor (voxels outside the organ's tissue range) filled with the host's HU.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tumorsynth._types import SIZE_CLASSES, SizeClass
from tumorsynth.errors import InputError, PlacementError
from tumorsynth.generators.model_grid import FIT_FRACTION, lumen_of, wall_windows
from tumorsynth.io.datasets import read_case_label
from tumorsynth.io.label_maps import label_mask, resolve_label_map
from tumorsynth.io.nifti import load_image
from tumorsynth.models.adversarial import AdversarialConfig
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.organs import OrganProfile, get_profile
from tumorsynth.organs.context import OrganContext
from tumorsynth.shapes import RandomTumorShape, render_shape, shape_box
from tumorsynth.training.data import case_items
from tumorsynth.training.tumor_crops import flip_together

__all__ = ["HealthyCrops", "HealthyScan", "load_healthy_scans"]

#: Organ voxels below this are no organ to put a tumor in.
_MIN_ORGAN_VOXELS = 1000
#: Shape draws that may find no room in a row before the scans are called unusable.
_MAX_MISSES = 200
#: The blend edge rendering will use, for the zoom (the generator's default range's middle).
_EDGE_MM = 1.2


@dataclass
class HealthyScan:
    """One healthy CT at its native grid with its organ, analysed once."""

    case_id: str
    image: torch.Tensor  # float32 HU
    organ: torch.Tensor  # float32 0/1
    spacing_mm: tuple[float, float, float]
    orientation: tuple[tuple[int, int], ...]
    context: OrganContext


def load_healthy_scans(
    entries: Sequence[str | Mapping[str, Any]],
    label_map: str | Mapping[str, Any] | None,
    organ: str,
) -> list[HealthyScan]:
    """The usable healthy scans of ``entries`` (warning about each one skipped)."""
    profile = get_profile(organ)
    scans, skipped = [], []
    for item in case_items(entries, "healthy", label_map):
        volume = load_image(item.image)
        lmap = resolve_label_map(item.label_map)
        label = read_case_label(item.label, lmap, volume).array
        mask = label_mask(label, lmap.organ_ids(organ))
        if int(mask.sum()) < _MIN_ORGAN_VOXELS:
            skipped.append(f"{item.label}: {int(mask.sum())} {organ} voxels")
            continue
        array = np.asarray(volume.array, dtype=np.float32)
        try:
            context = OrganContext.build(
                array, mask, volume.spacing_mm, profile, where=str(item.image)
            )
        except PlacementError as exc:
            skipped.append(f"{item.image}: {exc}")
            continue
        scans.append(
            HealthyScan(
                item.case_id,
                torch.from_numpy(np.ascontiguousarray(array)),
                torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)),
                volume.spacing_mm,
                orientation_of(volume.affine),
                context,
            )
        )
    for why in skipped:
        warnings.warn(
            f"skipped a healthy scan without room for {organ} tumors: {why}", stacklevel=2
        )
    if not scans:
        raise InputError(
            "data.healthy",
            f"expected scans with a {organ} mask to put tumors in, found none usable"
            + (f" ({'; '.join(skipped)})" if skipped else ""),
            fix="check data.healthy, data.healthy_label_map and data.organ",
        )
    return scans


class HealthyCrops:
    """Random healthy crops on the model's grid, each with a tumor mask the core drew in its
    organ; all randomness from ``rng``."""

    def __init__(
        self,
        scans: Sequence[HealthyScan],
        model: AdversarialConfig,
        profile: OrganProfile,
        size: SizeClass | str,
        rng: np.random.Generator,
    ) -> None:
        self.scans = list(scans)
        self.model = model
        self.profile = profile
        self.size = size
        self.rng = rng
        self.shapes = RandomTumorShape(profile)

    def _size(self) -> SizeClass:
        if self.size != "mixed":
            return self.size  # type: ignore[return-value]
        names = [n for n in SIZE_CLASSES if n in self.profile.mixed_weights]
        weights = np.array([self.profile.mixed_weights[n] for n in names], dtype=float)
        return names[int(self.rng.choice(len(names), p=weights / weights.sum()))]

    def crops(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
        """``n`` crops (n, 1, N, N, N) in HU, their tumor masks and organ masks (0/1), and each
        crop's host HU (its scan's measured parenchyma)."""
        crops: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        organs: list[torch.Tensor] = []
        hosts: list[float] = []
        misses = 0
        while len(crops) < n:
            scan = self.scans[int(self.rng.integers(len(self.scans)))]
            try:
                shape = self.shapes.draw(scan.context, self._size(), self.rng)
            except PlacementError as exc:
                misses += 1  # no room for this size here: another scan or size
                if misses > _MAX_MISSES:
                    raise InputError(
                        "data.healthy",
                        f"no room for {self.size} {self.profile.name} tumors in "
                        f"{_MAX_MISSES} draws over {len(self.scans)} scans ({exc})",
                        fix="use a smaller data.tumor_size, or scans with larger organs",
                    ) from exc
                continue
            image, tumor, organ = self._read(scan, shape)
            if float(tumor.sum()) < 1:
                continue
            image, tumor, organ = flip_together(
                [image, tumor, organ], self.rng, self.model.spacing_mm
            )
            crops.append(image)
            masks.append(tumor)
            organs.append(organ)
            hosts.append(float(scan.context.parenchyma.median_hu))
        return torch.cat(crops), torch.cat(masks), torch.cat(organs), hosts

    def _read(self, scan: HealthyScan, shape: Any) -> tuple[torch.Tensor, ...]:
        """The cube around ``shape`` (zoomed, or one of its windows, as the generator does):
        HU (a hollow organ's lumen in the tumor filled with the host's HU), tumor, organ."""
        size, spacing = self.model.crop_size, self.model.spacing_mm
        center = np.asarray(shape.center_vox, dtype=float)
        windows = wall_windows(shape, _EDGE_MM, size, spacing)
        if windows is None:
            needed = 2.0 * (float(np.max(shape.half_extents_mm())) + 4.5 * _EDGE_MM)
            zoom = max(1.0, needed / (FIT_FRACTION * size * min(spacing)))
        else:  # draws from the stream only for wall tumors that need windows
            zoom, offsets = windows
            center = center + np.asarray(offsets[int(self.rng.integers(len(offsets)))])
        cube = tuple(s * zoom for s in spacing)
        grid = CropGrid(tuple(center), scan.spacing_mm, scan.orientation, cube, size)  # type: ignore[arg-type]
        box = shape_box(shape, scan.spacing_mm, tuple(scan.image.shape), 0.0)
        field = render_shape(shape, scan.spacing_mm, box)
        inside = (field.distance_mm < 0) & (scan.organ[box.slices].numpy() > 0.5)
        in_box = CropGrid(
            tuple(center - np.asarray(box.origin)),
            scan.spacing_mm,
            scan.orientation,
            cube,  # type: ignore[arg-type]
            size,
        )
        tumor = (in_box.read(torch.from_numpy(inside.astype(np.float32))) > 0.5).float()
        organ = (grid.read(scan.organ) > 0.5).float()
        image = grid.read(scan.image)
        tissue = self.profile.tissue_hu
        if tissue is not None:  # the lumen becomes tumor: host HU where it is filled
            host = float(scan.context.parenchyma.median_hu)
            lumen = lumen_of(scan.image[box.slices].numpy(), inside, tissue)
            share = in_box.read(torch.from_numpy(lumen.astype(np.float32)))
            image = image + share * (host - image)
        return image, tumor, torch.maximum(organ, tumor)
