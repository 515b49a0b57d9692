"""Training crops for the learned generator: CT crops (autoencoder) and annotated-tumor crops
with their masks (denoiser), read on the model's grid straight from the scans at native spacing.

Scans are loaded once, kept as float32 tensors at their native grid, and cropped by trilinear
interpolation (:class:`~tumorsynth.models.crop_grid.CropGrid`), which also gives scale
augmentation for free. Crops are random flips of the RAS axes (and in-plane transposes when the
model grid is square in-plane).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import cc3d
import numpy as np
import torch

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import discover_cases, read_case_label
from tumorsynth.io.identity import case_id_from
from tumorsynth.io.label_maps import LabelMap, label_mask, resolve_label_map
from tumorsynth.io.nifti import load_image
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.models.tumor_diffusion import size_class_of
from tumorsynth.organs import equivalent_diameter_mm, get_profile, registered_organs
from tumorsynth.organs.context_hollow import in_range
from tumorsynth.training.config import NO_DEFAULT_MAP
from tumorsynth.training.data import case_items

__all__ = [
    "AnnotatedTumor",
    "CropSampler",
    "Scan",
    "CubeGeometry",
    "check_crop_fits",
    "flip_together",
    "load_scan",
    "load_tumor_scans",
    "scan_files",
    "trained_enhancement",
]

_NIFTI = (".nii", ".nii.gz")


class CubeGeometry(Protocol):
    """What crops need of a model: its cube's edge (voxels) and spacing (mm)."""

    @property
    def crop_size(self) -> int: ...

    @property
    def spacing_mm(self) -> tuple[float, float, float]: ...


#: Equivalent diameters (mm) a larger tumor is zoomed out to for the early class.
EARLY_FROM_LARGER_MM = (8.0, 19.0)
#: The host shell around a tumor whose median HU is its parenchyma (mm from its edge).
HOST_SHELL_MM = (3.0, 10.0)


@dataclass(frozen=True)
class AnnotatedTumor:
    """One real tumor (a 26-connected component): centre (voxels), equivalent diameter (mm),
    the median HU of the labelled non-tumor tissue 3-10 mm around it (its host; NaN when
    no labelled tissue is there), and its organ (None for a label map's generic tumor id)."""

    center_vox: tuple[float, float, float]
    diameter_mm: float
    n_voxels: int
    host_hu: float = math.nan
    organ: str | None = None


@dataclass
class Scan:
    """A CT at its native grid (float32 HU), with its tumors' mask when it is annotated."""

    case_id: str
    image: torch.Tensor
    spacing_mm: tuple[float, float, float]
    orientation: tuple[tuple[int, int], ...]
    foreground: np.ndarray  # (K, 3) voxel coordinates of body voxels, subsampled
    tumor_mask: torch.Tensor | None = None
    tumors: list[AnnotatedTumor] = field(default_factory=list)


def scan_files(entries: Sequence[str]) -> list[Path]:
    """CT files from config entries: files, plain folders of NIfTI, or nnU-Net/MSD datasets."""
    files: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if path.is_file():
            files.append(path)
        elif (path / "imagesTr").is_dir() or (path / "dataset.json").is_file():
            files += [case.image for case in discover_cases(path)]
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(_NIFTI))
            if not found:
                raise InputError(str(path), "expected NIfTI CT files (*.nii.gz), found none")
            files += found
        else:
            raise InputError(str(path), "expected a CT file or a folder of them, found nothing")
    return files


def load_scan(
    image: str | os.PathLike[str],
    *,
    label: str | os.PathLike[str] | None = None,
    label_map: LabelMap | str | None = None,
    organs: Sequence[str] = (),
    foreground_hu: float = -500.0,
    min_voxels: int = 8,
    case_id: str | None = None,
) -> Scan:
    """Load one CT (and, with ``label``, the mask and components of its ``organs``' tumors)."""
    vol = load_image(image)
    array = np.asarray(vol.array, dtype=np.float32)
    spacing = vol.spacing_mm
    tumor_mask, tumors = None, []
    if label is not None:
        if label_map is None:
            raise InputError(str(label), f"label map {NO_DEFAULT_MAP}")
        lmap = resolve_label_map(label_map)
        lab = read_case_label(label, lmap, vol).array
        ids = _tumor_ids(lmap, organs)
        mask = label_mask(lab, ids)
        organ_of = _organ_of_tumor_ids(lmap, organs)
        tumors = _components(mask, spacing, min_voxels, array, lab, organ_of)
        tumor_mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
    stride = tuple(max(1, int(round(4.0 / s))) for s in spacing)  # about every 4 mm
    coarse = array[:: stride[0], :: stride[1], :: stride[2]] > foreground_hu
    foreground = np.argwhere(coarse) * np.asarray(stride)
    if len(foreground) == 0:
        raise InputError(
            vol.name, f"expected body voxels above {foreground_hu} HU, found none (is it a CT?)"
        )
    return Scan(
        case_id or case_id_from(image, channel=False),
        torch.from_numpy(np.ascontiguousarray(array)),
        spacing,
        orientation_of(vol.affine),
        foreground,
        tumor_mask,
        tumors,
    )


def load_tumor_scans(
    cases: Sequence[str | Mapping[str, Any]],
    label_map: str | Mapping[str, Any] | None,
    organs: Sequence[str],
    min_voxels: int = 8,
) -> list[Scan]:
    """Annotated scans from training-config case entries; an error when none has a tumor."""
    items = case_items(cases, "real", label_map)
    scans = [
        load_scan(
            item.image,
            label=item.label,
            label_map=item.label_map,
            organs=organs,
            min_voxels=min_voxels,
            case_id=item.case_id,
        )
        for item in items
    ]
    if not any(scan.tumors for scan in scans):
        names = ", ".join(item.label for item in items)
        raise InputError(
            names,
            f"expected annotated tumors of {list(organs) or 'any organ'} (label map "
            f"{label_map!r}), found none of at least {min_voxels} voxels",
            fix="check data.label_map and data.organs",
        )
    return scans


def check_crop_fits(scans: Sequence[Scan], model: CubeGeometry) -> None:
    """The model's crop (``crop_size`` voxels of ``spacing_mm``) against the scans' extent (mm,
    RAS axes): larger than every scan along an axis is refused (crops would be mostly padding:
    usually ``crop_size`` taken for mm, or a much coarser ``spacing_mm`` than meant); larger than
    some scans is a warning naming them."""
    crop_mm = np.asarray(model.spacing_mm, dtype=float) * model.crop_size
    extents = {}
    for scan in scans:
        extent = np.zeros(3)
        for voxel_axis, (ras_axis, _) in enumerate(scan.orientation):
            extent[ras_axis] = scan.image.shape[voxel_axis] * scan.spacing_mm[voxel_axis]
        extents[scan.case_id] = extent
    small = {case: e for case, e in extents.items() if np.any(crop_mm > e + 1e-6)}
    if not small:
        return
    mm = lambda v: " x ".join(f"{x:.0f}" for x in v)  # noqa: E731
    largest = np.max(np.stack(list(extents.values())), axis=0)
    listed = "; ".join(f"{case}: {mm(e)} mm" for case, e in list(small.items())[:4])
    message = (
        f"a crop of {model.crop_size} voxels of {' x '.join(f'{s:g}' for s in model.spacing_mm)} "
        f"mm ({mm(crop_mm)} mm) is larger than {len(small)} of {len(extents)} scans "
        f"({listed}{'; ...' if len(small) > 4 else ''})"
    )
    fits = int(np.floor(np.min(largest / np.asarray(model.spacing_mm, dtype=float))))
    fix = (
        f"use a model.crop_size of at most {fits} voxels (it is in voxels, not mm), or a finer "
        "model.spacing_mm"
    )
    if np.any(crop_mm > largest + 1e-6):
        raise InputError(
            "model.crop_size", message + "; every crop would be mostly padding", fix=fix
        )
    warnings.warn(f"model.crop_size: {message}; their crops are padded ({fix})", stacklevel=2)


class CropSampler:
    """Random model-grid crops from loaded scans; all randomness from ``rng``."""

    def __init__(
        self,
        scans: Sequence[Scan],
        model: CubeGeometry,
        rng: np.random.Generator,
        *,
        jitter: float = 0.125,
        scale_range: tuple[float, float] = (1.0, 1.0),
        host_reference_hu: float | None = None,
        early_from_larger: float = 0.0,
    ) -> None:
        if not scans:
            raise InputError("data", "no scans to crop from")
        self.scans = list(scans)
        self.model = model
        self.rng = rng
        self.jitter = float(jitter)
        self.scale_range = scale_range
        self.host_reference_hu = host_reference_hu
        self.early_from_larger = float(early_from_larger)
        self.tumors = [(scan, t) for scan in self.scans for t in scan.tumors]
        if host_reference_hu is not None:
            unmeasured = [scan.case_id for scan, t in self.tumors if not math.isfinite(t.host_hu)]
            if unmeasured:
                raise InputError(
                    ", ".join(sorted(set(unmeasured))),
                    "a host-relative model needs each tumor's host (labelled tissue 3-10 mm "
                    "around it), found tumors with none",
                    fix="label the organ around the tumors, or set model.host_relative: false",
                )

    def _grid(self, scan: Scan, center: Sequence[float], scale: float) -> CropGrid:
        return CropGrid(
            tuple(float(c) for c in center),  # type: ignore[arg-type]
            scan.spacing_mm,
            scan.orientation,
            tuple(s * scale for s in self.model.spacing_mm),  # type: ignore[arg-type]
            self.model.crop_size,
        )

    def ct_crops(self, n: int) -> torch.Tensor:
        """``n`` crops (n, 1, N, N, N) in HU centred on random body voxels."""
        out = []
        for _ in range(n):
            scan = self.scans[int(self.rng.integers(len(self.scans)))]
            center = scan.foreground[int(self.rng.integers(len(scan.foreground)))]
            center = center + self.rng.uniform(-2.0, 2.0, size=3)
            crop = self._grid(scan, center, 1.0).read(scan.image)
            out.append(self._augment([crop])[0])
        return torch.cat(out)

    def tumor_crops(self, n: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """``n`` crops around annotated tumors: (crops HU, masks 0/1, size classes); with
        ``host_reference_hu`` each crop is shifted so its tumor's host sits there."""
        if not self.tumors:
            raise InputError("data", "no annotated tumors to crop")
        crops, masks, classes = [], [], []
        extent_mm = self.model.crop_size * np.asarray(self.model.spacing_mm)
        for _ in range(n):
            scan, tumor = self.tumors[int(self.rng.integers(len(self.tumors)))]
            scale = float(self.rng.uniform(*self.scale_range))
            if self.early_from_larger and self.rng.random() < self.early_from_larger:
                target_mm = float(self.rng.uniform(*EARLY_FROM_LARGER_MM))
                scale = max(scale, tumor.diameter_mm / target_mm)  # zoomed out to early size
            offset_mm = self.rng.uniform(-1.0, 1.0, size=3) * self.jitter * extent_mm * scale
            center = np.asarray(tumor.center_vox) + offset_mm / np.asarray(scan.spacing_mm)
            grid = self._grid(scan, center, scale)
            tumor_mask = cast(torch.Tensor, scan.tumor_mask)  # scans with tumors have one
            crop, mask = self._augment(
                [grid.read(scan.image), (grid.read(tumor_mask) > 0.5).float()]
            )
            if self.host_reference_hu is not None:
                crop = crop + float(self.host_reference_hu - tumor.host_hu)
            crops.append(crop)
            masks.append(mask)
            classes.append(size_class_of(tumor.diameter_mm / scale))
        return torch.cat(crops), torch.cat(masks), classes

    def _augment(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return flip_together(tensors, self.rng, self.model.spacing_mm)


def flip_together(
    tensors: Sequence[torch.Tensor], rng: np.random.Generator, spacing_mm: Sequence[float]
) -> list[torch.Tensor]:
    """The same random flips (and in-plane transpose, when the grid is square in-plane) for
    every tensor (1, 1, N, N, N)."""
    dims = [d + 2 for d in range(3) if rng.random() < 0.5]
    transpose = spacing_mm[0] == spacing_mm[1] and rng.random() < 0.5
    out = []
    for t in tensors:
        if dims:
            t = torch.flip(t, dims)
        if transpose:
            t = t.transpose(2, 3)
        out.append(t.contiguous())
    return out


def _tumor_ids(label_map: LabelMap, organs: Sequence[str]) -> list[int]:
    if organs:
        ids = [i for organ in organs for i in label_map.tumor_ids(organ)]
    else:
        ids = [i for values in label_map.tumors.values() for i in values]
        ids += list(label_map.generic_tumor)
    if not ids:
        raise InputError(
            f"label map {label_map.name!r}",
            f"names no tumors of {list(organs) or 'any organ'}",
            fix="use a label map with tumor ids (msd, lits, kits, tumorsynth, or a JSON map)",
        )
    return sorted(set(ids))


def _organ_of_tumor_ids(label_map: LabelMap, organs: Sequence[str]) -> dict[int, str]:
    """Each tumor id's organ; a generic tumor id (MSD) is the organ's when one organ is read."""
    found = {i: key.removesuffix("_tumor") for key, ids in label_map.tumors.items() for i in ids}
    if len(organs) == 1:
        found.update({int(i): organs[0] for i in label_map.generic_tumor})
    return found


def _components(
    mask: np.ndarray,
    spacing: Sequence[float],
    min_voxels: int,
    image: np.ndarray,
    label: np.ndarray,
    organ_of: Mapping[int, str],
) -> list[AnnotatedTumor]:
    if not mask.any():
        return []
    labels = cc3d.connected_components(mask.astype(np.uint8), connectivity=26)
    stats = cc3d.statistics(labels)
    voxel_mm3 = float(np.prod(spacing))
    tumors = []
    for index in range(1, len(stats["voxel_counts"])):
        count = int(stats["voxel_counts"][index])
        if count < min_voxels:
            continue
        diameter = equivalent_diameter_mm(count * voxel_mm3)
        center = tuple(float(c) for c in stats["centroids"][index])
        box = stats["bounding_boxes"][index]
        ids, counts = np.unique(label[box][labels[box] == index], return_counts=True)
        organ = organ_of.get(int(ids[np.argmax(counts)]))
        tissue = get_profile(organ).tissue_hu if organ in registered_organs() else None
        host = _host_hu(labels, index, box, spacing, image, label, mask, tissue)
        tumors.append(AnnotatedTumor(center, diameter, count, host, organ))  # type: ignore[arg-type]
    return tumors


def trained_enhancement(scans: Sequence[Scan]) -> float | None:
    """How contrast-enhanced the training tumors' hosts are: the median of each organ profile's
    ``enhancement`` of its tumor's host HU (None when no tumor has an organ and a host)."""
    values = [
        get_profile(t.organ).appearance.enhancement(t.host_hu)
        for scan in scans
        for t in scan.tumors
        if t.organ is not None and t.organ in registered_organs() and math.isfinite(t.host_hu)
    ]
    return round(float(np.median(values)), 4) if values else None


def _host_hu(
    components: np.ndarray,
    index: int,
    box: tuple[slice, ...],
    spacing: Sequence[float],
    image: np.ndarray,
    label: np.ndarray,
    tumors: np.ndarray,
    tissue_hu: tuple[float, float] | None = None,
) -> float:
    """Median HU of labelled non-tumor voxels 3-10 mm from component ``index`` (NaN if none);
    everything is read in the component's box grown by 10 mm. With ``tissue_hu`` (a hollow
    organ, whose label also holds its lumen) only voxels in that HU range count."""
    import edt

    reach = HOST_SHELL_MM[1]
    grown = tuple(
        slice(
            max(0, s.start - int(math.ceil(reach / d)) - 1), s.stop + int(math.ceil(reach / d)) + 1
        )
        for s, d in zip(box, spacing)
    )
    inside = components[grown] == index
    distance = edt.edt(~inside, anisotropy=tuple(float(d) for d in spacing))
    shell = (distance >= HOST_SHELL_MM[0]) & (distance <= reach)
    shell &= (label[grown] != 0) & ~tumors[grown]
    if tissue_hu is not None:
        shell &= in_range(image[grown], tissue_hu)
    if not shell.any():
        return math.nan
    return float(np.median(image[grown][shell]))
