"""Training data: real-tumor and healthy cases, their split, and the MONAI transform chains.

Deterministic preparation (load, channel first, RAS orientation, resampling to the working
spacing, relabelling) is cached per case. Real cases are HU-windowed and cropped around
background, organ and tumor; healthy cases are cropped first, and tumors synthesized for the
tumor crops only (``RandTumorSynthd`` with ``crop_size``: each scan's organ analysis is kept per
loader worker, and a crop costs what its tumors cost, not the whole scan).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.data import CacheDataset, Dataset, MetaTensor
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    RandCropByLabelClassesd,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)

from tumorsynth._types import derive_seed
from tumorsynth.errors import InputError
from tumorsynth.generators import generator_takes
from tumorsynth.io.datasets import CaseRef, discover_cases, is_case_list, read_case_list
from tumorsynth.io.identity import case_id_from
from tumorsynth.io.label_maps import (
    OUTPUT_LABELS,
    LabelMap,
    label_map_text,
    resolve_label_map,
    to_output_labels,
)
from tumorsynth.io.nifti import spacing_from_affine
from tumorsynth.models.segmentors import resample_transforms, window_transform
from tumorsynth.training.config import NO_DEFAULT_MAP, TrainConfig
from tumorsynth.transforms import RandTumorSynthd, TumorSynthd
from tumorsynth.transforms.rand_tumor_synthd import as_type_of

__all__ = [
    "CaseItem",
    "RelabelToOutputd",
    "ToClassesd",
    "build_datasets",
    "case_items",
    "check_patch_fits",
    "check_training_data",
    "resampled_shape",
    "median_spacing",
    "prepare_transforms",
    "split_cases",
    "train_transforms",
    "val_transforms",
]


@dataclass(frozen=True)
class CaseItem:
    """One training case: ``kind`` is ``real`` (annotated tumors) or ``healthy`` (organ labels);
    ``label_map`` says which ids its label file uses."""

    case_id: str
    image: str
    label: str
    kind: str
    label_map: str

    def as_dict(self) -> dict[str, str]:
        # Not "label_map": MONAI reads every "label_*" key as the label's meta dictionary.
        return {
            "case_id": self.case_id,
            "image": self.image,
            "label": self.label,
            "kind": self.kind,
            "labelmap": self.label_map,
        }


def case_items(
    entries: Sequence[str | Mapping[str, Any]],
    kind: str,
    default_map: str | Mapping[str, Any] | None,
) -> list[CaseItem]:
    """Cases from config entries: a dataset folder or case list (``.txt``/``.csv``/``.tsv`` of
    ``IMAGE LABEL`` lines, :func:`~tumorsynth.io.datasets.read_case_list`), ``{path: DIR or
    LIST, label_map: ..}`` or one case ``{image: CT, label: SEG, label_map: ..}``."""
    items = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            keys = (
                {"image", "label", "label_map", "case_id"}
                if "image" in entry
                else {"path", "label_map"}
            )
            unknown = sorted(set(entry) - keys)
            if unknown or not ({"image", "path"} & set(entry)):
                raise InputError(
                    f"data ({kind} cases)",
                    f"expected a folder, {{path: DIR, label_map: ..}} or {{image: CT, label: SEG, "
                    f"label_map: ..}}, found {dict(entry)}"
                    + (f" (unknown key(s) {unknown})" if unknown else ""),
                )
        folder = entry if isinstance(entry, str) else entry.get("path", "")
        label_map = default_map if isinstance(entry, str) else entry.get("label_map", default_map)
        if label_map is None:
            raise InputError(f"data.{kind}[{index}]", f"label map {NO_DEFAULT_MAP}")
        resolve_label_map(label_map)
        label_map = label_map_text(label_map)  # an inline mapping as JSON text
        if not isinstance(entry, str) and "image" in entry:  # one case listed by its files
            if "label" not in entry:
                raise InputError(str(entry["image"]), "a listed training case needs 'label' too")
            case_id = entry.get("case_id") or case_id_from(entry["image"], channel=False)
            items.append(
                CaseItem(
                    f"{kind}:{case_id}",
                    str(entry["image"]),
                    str(entry["label"]),
                    kind,
                    str(label_map),
                )
            )
            continue
        if is_case_list(folder):
            refs = [CaseRef(c.case_id, c.image, c.label) for c in read_case_list(folder)]
        else:
            refs = discover_cases(folder)
        for ref in refs:
            if ref.label is None:
                raise InputError(str(ref.image), "training case has no label")
            items.append(
                CaseItem(
                    f"{kind}:{ref.case_id}", str(ref.image), str(ref.label), kind, str(label_map)
                )
            )
    seen: dict[str, str] = {}
    for item in items:
        if item.case_id in seen:
            raise InputError(
                item.image,
                f"case id {item.case_id!r} is used twice among the {kind} cases (also by "
                f"{seen[item.case_id]}); cases are told apart by the image's file name",
                fix="rename one of the files or list each case once",
            )
        seen[item.case_id] = item.image
    return items


def split_cases(config: TrainConfig) -> tuple[list[CaseItem], list[CaseItem]]:
    """(train, validation) cases. Validation comes from real cases when there are any (it is
    never the test set: that is evaluated separately), else from healthy cases with seeded
    synthetic tumors; ``data.val_cases`` names them explicitly."""
    d = config.data
    real = case_items(d.real, "real", d.real_label_map) if d.mode in ("real", "mixed") else []
    healthy = (
        case_items(d.healthy, "healthy", d.healthy_label_map)
        if d.mode in ("synthetic", "mixed")
        else []
    )
    pool = real if real else healthy
    if d.val_cases:
        wanted = set(d.val_cases)
        val = [
            c for c in real + healthy if c.case_id.split(":", 1)[1] in wanted or c.case_id in wanted
        ]
        missing = wanted - {c.case_id.split(":", 1)[1] for c in val} - {c.case_id for c in val}
        if missing:
            raise InputError("data.val_cases", f"cases {sorted(missing)} are not in the data")
    else:
        order = sorted(pool, key=lambda c: derive_seed(config.seed, c.case_id))
        n_val = int(round(d.val_fraction * len(order))) if len(order) > 1 else 0
        val = order[:n_val]
    val_ids = {c.case_id for c in val}
    train = [c for c in real + healthy if c.case_id not in val_ids]
    if not train:
        raise InputError("data", "no training cases left after the validation split")
    return train, val


def median_spacing(items: Sequence[CaseItem]) -> tuple[float, float, float]:
    """Median voxel size (mm) over the cases, read from headers only, in RAS axis order."""
    spacings = []
    for item in items:
        img = _header_of(item.image)
        ornt = nib.orientations.io_orientation(img.affine)
        sp = np.array(spacing_from_affine(img.affine))
        spacings.append(sp[np.argsort(ornt[:, 0])])
    return tuple(float(v) for v in np.median(np.array(spacings), axis=0))  # type: ignore[return-value]


def _header_of(image: str) -> Any:
    """The NIfTI image (its header; voxels are not read), or an error naming the file."""
    try:
        img: Any = nib.load(image)
    except FileNotFoundError as exc:
        raise InputError(image, "training image not found") from exc
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise InputError(image, f"expected a NIfTI CT, found an unreadable file ({exc})") from exc
    if len(img.shape) < 3:
        raise InputError(image, f"expected a 3-D CT, found shape {img.shape}")
    return img


def resampled_shape(image: str, spacing_mm: Sequence[float]) -> tuple[int, int, int]:
    """Voxels (RAS axes) of ``image`` after resampling to ``spacing_mm``, from its header."""
    img = _header_of(image)
    axes = nib.orientations.io_orientation(img.affine)[:, 0].astype(int)
    shape = np.zeros(3)
    spacing = np.zeros(3)
    shape[axes] = img.shape[:3]
    spacing[axes] = spacing_from_affine(img.affine)
    size = np.maximum(1, np.round(shape * spacing / np.asarray(spacing_mm, dtype=float)))
    return tuple(int(n) for n in size)  # type: ignore[return-value]


def check_patch_fits(
    config: TrainConfig, items: Sequence[CaseItem], spacing_mm: Sequence[float]
) -> None:
    """The training patch against the training images after resampling (headers only).

    A patch larger than every image along an axis is refused (each crop would be mostly padding:
    usually a patch given in mm, or a spacing far coarser than meant); one larger than some of
    the images is a warning naming them. Both name the case, its size after resampling, the
    patch and the fix.
    """
    patch = tuple(int(n) for n in config.model.patch_size)
    sizes = {item.case_id: resampled_shape(item.image, spacing_mm) for item in items}
    if not sizes:
        return
    spacing = " x ".join(f"{s:g}" for s in spacing_mm)
    too_small = {
        case: size
        for case, size in sizes.items()
        if any(p > n for p, n in zip(patch, size, strict=True))
    }
    if not too_small:
        return
    largest = tuple(max(size[axis] for size in sizes.values()) for axis in range(3))
    fits = tuple(min(p, n) for p, n in zip(patch, largest, strict=True))
    listed = "; ".join(
        f"{case}: {' x '.join(map(str, size))} voxels" for case, size in list(too_small.items())[:4]
    ) + ("; ..." if len(too_small) > 4 else "")
    message = (
        f"{' x '.join(map(str, patch))} voxels is larger than "
        f"{len(too_small)} of {len(sizes)} training images after resampling to {spacing} mm "
        f"({listed})"
    )
    fix = (
        f"use a model.patch_size of at most {' x '.join(map(str, fits))} voxels (it is in "
        "voxels, not mm), or a finer data.spacing_mm"
    )
    if any(p > n for p, n in zip(patch, largest, strict=True)):
        raise InputError(
            "model.patch_size", message + "; every crop would be mostly padding", fix=fix
        )
    smallest = tuple(min(size[axis] for size in too_small.values()) for axis in range(3))
    unpadded = " x ".join(str(min(p, n)) for p, n in zip(patch, smallest, strict=True))
    warnings.warn(
        f"model.patch_size {message}; their crops are padded (a model.patch_size of at most "
        f"{unpadded} voxels pads none, or use a finer data.spacing_mm)",
        stacklevel=2,
    )


def check_training_data(
    config: TrainConfig, items: Sequence[CaseItem], spacing_mm: Sequence[float]
) -> None:
    """What can be checked before a run writes anything: the patch against the resampled
    images (:func:`check_patch_fits`) and the synthesis settings (generator, its options, organ,
    tumor size), by building the transform chains once."""
    check_patch_fits(config, items, spacing_mm)
    for kind in sorted({item.kind for item in items}):
        try:
            train_transforms(config, spacing_mm, kind)
        except TypeError as exc:  # options the generator's constructor does not take
            raise InputError(
                "data.generator_options",
                f"expected options of generator {config.data.generator!r}, found "
                f"{config.data.generator_options} ({exc})",
            ) from exc


class RelabelToOutputd(MapTransform):
    """Input labels -> the tumorsynth output convention, deterministically; the input label map
    is the sample's ``labelmap`` entry (so datasets of different conventions mix). A generic
    map (MSD: 1 organ, 2 tumor) is read as the first of ``organ``."""

    def __init__(
        self, keys: Sequence[str], organ: str | Sequence[str], map_key: str = "labelmap"
    ) -> None:
        super().__init__(keys)
        self.organs = [organ] if isinstance(organ, str) else list(organ)
        self.map_key = map_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        label_map: LabelMap = resolve_label_map(d[self.map_key])
        for key in self.key_iterator(d):
            value = d[key]
            array = (
                value.detach().cpu().numpy()
                if isinstance(value, torch.Tensor)
                else np.asarray(value)
            )
            out = to_output_labels(
                np.rint(array).astype(np.int64), label_map, OUTPUT_LABELS, self.organs
            )
            d[key] = as_type_of(out, value, dtype=torch.uint8)  # ids, 4x smaller in the cache
        return d


class ToClassesd(MapTransform):
    """Output-convention labels -> network classes: 0 background, then per organ (in the order
    given) the organ and its tumor: 1 organ, 2 its tumor for one organ; the output ids of
    organs not given become background."""

    def __init__(self, keys: Sequence[str], organ: str | Sequence[str]) -> None:
        super().__init__(keys)
        organs = [organ] if isinstance(organ, str) else list(organ)
        self.lookup = np.zeros(256, dtype=np.uint8)
        for index, name in enumerate(organs):
            self.lookup[OUTPUT_LABELS.id_of(name)] = 2 * index + 1
            self.lookup[OUTPUT_LABELS.id_of(f"{name}_tumor")] = 2 * index + 2

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            # A plain tensor: ops on a MetaTensor track meta (3 ms per comparison of a 96^3 crop).
            t = value.as_tensor() if isinstance(value, MetaTensor) else torch.as_tensor(value)
            if t.dtype == torch.uint8 and t.device.type == "cpu":  # one lookup per voxel
                classes = torch.from_numpy(np.take(self.lookup, t.numpy()))
            else:
                classes = torch.zeros_like(t, dtype=torch.uint8)
                for out_id in np.flatnonzero(self.lookup):
                    classes[t == int(out_id)] = int(self.lookup[out_id])
            d[key] = as_type_of(classes, value)
        return d


def prepare_transforms(config: TrainConfig, spacing_mm: Sequence[float], kind: str) -> list:
    """The deterministic, cacheable part: load, orient, resample (as prediction does, with
    :func:`~tumorsynth.models.segmentors.resample_transforms`); labels relabelled."""
    steps: list = [
        LoadImaged(keys=("image", "label"), image_only=True),
        EnsureChannelFirstd(keys=("image", "label")),
        *resample_transforms(spacing_mm, label=True),
        # a generic map (MSD) is read as the first organ as written in data.organ
        RelabelToOutputd(["label"], config.data.organ),
    ]
    del kind  # every kind is relabelled by its own label map
    return steps


def _synthesis_settings(config: TrainConfig) -> dict[str, Any]:
    """What training and validation synthesis share (labels are already relabelled)."""
    d = config.data
    options = dict(d.generator_options)
    if d.num_workers > 0 and generator_takes(d.generator, "device"):
        # Loader workers are forked; CUDA cannot be used in them, so a learned generator samples
        # on their CPUs unless the config says otherwise (num_workers: 0 keeps it on the GPU).
        options.setdefault("device", "cpu")
    return {
        "keys": ("image", "label"),
        "organ": d.organs,
        "count": d.tumors_per_case,
        "size": d.tumor_size,
        "label_map": OUTPUT_LABELS,
        "generator": d.generator,
        "generator_options": options,
        "filter": _online_filter(d.filter, d.num_workers),
        "cache_dir": d.analysis_cache_dir,
    }


def _online_filter(settings: Mapping[str, Any] | None, workers: int) -> dict[str, Any] | None:
    """``data.filter`` for the synthesis transforms: in forked loader workers the segmentor runs
    on their CPUs unless the config names a device (as for a learned generator)."""
    if settings is None:
        return None
    return {"device": "cpu", **settings} if workers > 0 else dict(settings)


def train_transforms(config: TrainConfig, spacing_mm: Sequence[float], kind: str) -> Compose:
    """Prepare (cached), then crops: ``samples_per_case`` per case, centred on background, organ
    and tumor voxels in the shares ``positive_fraction`` gives (1 - pf, pf / 3, 2 pf / 3; with
    several organs, the organ and tumor shares are split evenly between them)."""
    d = config.data
    steps = prepare_transforms(config, spacing_mm, kind)
    pf = d.positive_fraction
    ratios = [1.0 - pf, pf / 3.0, 2.0 * pf / 3.0]
    n_organs = len(d.organs)
    class_ratios = [ratios[0]] + [r / n_organs for _ in d.organs for r in ratios[1:]]
    if kind == "healthy":  # crop first, tumors for the tumor crops only
        steps.append(
            RandTumorSynthd(
                prob=d.synthesis_prob,
                on_error="skip",
                crop_size=config.model.patch_size,
                crop_ratios=ratios,
                num_samples=d.samples_per_case,
                **_synthesis_settings(config),
            )
        )
        # Plain tensors from here on: the crops' meta is not used, and tracking it costs more
        # than the steps themselves.
        steps.append(EnsureTyped(keys=("image", "label"), track_meta=False))
    steps += [
        ToClassesd(["label"], d.organs),
        window_transform(d.hu_window),
        SpatialPadd(keys=("image", "label"), spatial_size=config.model.patch_size),
    ]
    if kind != "healthy":
        steps.append(
            RandCropByLabelClassesd(
                keys=("image", "label"),
                label_key="label",
                spatial_size=config.model.patch_size,
                num_classes=len(class_ratios),
                ratios=class_ratios,
                num_samples=d.samples_per_case,
                warn=False,
            )
        )
    steps += [
        RandFlipd(keys=("image", "label"), prob=0.2, spatial_axis=0),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.3),
        RandShiftIntensityd(keys="image", offsets=0.05, prob=0.3),
        EnsureTyped(keys=("image", "label"), track_meta=False),
    ]
    return Compose(steps)


def val_transforms(config: TrainConfig, spacing_mm: Sequence[float], kind: str) -> Compose:
    d = config.data
    steps = prepare_transforms(config, spacing_mm, kind)
    if kind == "healthy":
        steps.append(TumorSynthd(seed=config.seed, **_synthesis_settings(config)))
    steps += [ToClassesd(["label"], d.organs), window_transform(d.hu_window)]
    return Compose(steps)


def build_datasets(
    config: TrainConfig,
    train: Sequence[CaseItem],
    val: Sequence[CaseItem],
    spacing_mm: Sequence[float],
) -> tuple[torch.utils.data.Dataset, list[float], torch.utils.data.Dataset | None]:
    """Training dataset (real and healthy parts concatenated), per-item sampling weights that
    give ``synthetic_fraction`` of the draws to healthy scans in mixed mode, and validation."""
    d = config.data
    parts, weights = [], []
    for kind in ("real", "healthy"):
        items = [c.as_dict() for c in train if c.kind == kind]
        if not items:
            continue
        transform = train_transforms(config, spacing_mm, kind)
        # The healthy chain's first random step cuts crops out of the cached volume and never
        # writes it: no copy of the whole volume per draw (100 ms for IRCAD 1.7 at 1.5 mm).
        ds = (
            CacheDataset(
                items, transform, num_workers=None, progress=False, copy_cache=kind != "healthy"
            )
            if d.cache
            else Dataset(items, transform)
        )
        parts.append(ds)
        share = (
            1.0
            if d.mode != "mixed"
            else (d.synthetic_fraction if kind == "healthy" else 1.0 - d.synthetic_fraction)
        )
        weights += [share / len(items)] * len(items)
    dataset: torch.utils.data.ConcatDataset[Any] = torch.utils.data.ConcatDataset(parts)
    val_ds: torch.utils.data.ConcatDataset[Any] | None = None
    if val:
        val_parts = []
        for kind in ("real", "healthy"):
            items = [c.as_dict() for c in val if c.kind == kind]
            if items:
                val_parts.append(Dataset(items, val_transforms(config, spacing_mm, kind)))
        val_ds = torch.utils.data.ConcatDataset(val_parts)
    return dataset, weights, val_ds
