"""Predict tumor (and organ) labels with a trained segmentor, on the input's own grid.

The CT is oriented to RAS, resampled to the network's spacing and windowed by the same transforms
as in training (:func:`~tumorsynth.models.segmentors.resample_transforms`, ``window_transform``),
segmented with Gaussian-weighted sliding windows, and the class probabilities are resampled back
onto the input grid before the argmax -- in slabs, with the probabilities held in float16 on the
network's grid, so that a 512 x 512 x 900 CT needs a few times its own size in memory
(:mod:`tumorsynth.pipelines.predict_slabs`). Output labels follow the tumorsynth convention (e.g.
1 liver, 2 liver tumor) and are written with the input's affine and header. Needs the ``torch``
extra.

Files written by :func:`predict_files` (each atomically: a temporary file, then a rename)::

    <out>/<case_id>.nii.gz                   labels, on the input's grid, affine and header
    <out>/probabilities/<case_id>_<organ>_tumor.nii.gz
                                             with save_probabilities (--save-probabilities)

A probability file holds, for each tumor class the network predicts (one: ``<organ>_tumor``,
the output label name, e.g. ``liver_0_liver_tumor.nii.gz``), that class's softmax probability on
the input's grid as 3-D uint8 ``round(255 * p)`` (read ``value / 255``), with the same affine
(qform/sform) as the label file and ``cal_min 0``, ``cal_max 255``. Probabilities are those the
labels are the argmax of (resampled from the same slabs); with an organ mask they are 0 where the
mask drops tumor labels (farther than 5 mm from the organ). They are written before the labels, so
a case whose label file exists has its probability files too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage as ndi
from tqdm import tqdm

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import output_dir
from tumorsynth.io.identity import (
    case_id_from,
    check_case_id,
    check_outputs_not_inputs,
    split_case_name,
)
from tumorsynth.io.label_maps import OUTPUT_LABELS, label_mask, resolve_label_map
from tumorsynth.io.nifti import Volume, check_same_grid, load_image, load_label, save_volume
from tumorsynth.models.device import pick_device
from tumorsynth.models.segmentors import load_segmentor, window_transform
from tumorsynth.pipelines.predict_slabs import SLAB_VOXELS, segment_in_slabs

__all__ = [
    "PROBABILITY_DIR",
    "SegmentationOutput",
    "Segmentor",
    "near_organ",
    "predict_files",
    "probability_path",
    "restrict_to_organ",
]

#: Subfolder of the output folder for ``--save-probabilities`` maps.
PROBABILITY_DIR = "probabilities"


@dataclass
class Segmentor:
    """A trained network with the preprocessing it was trained with."""

    model: torch.nn.Module
    config: dict[str, Any]
    device: torch.device

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str], device: str = "auto") -> Segmentor:
        """Load a checkpoint folder written by ``tumorsynth train`` (sha256-checked) onto
        ``device`` (``auto``: a GPU when there is one)."""
        target = pick_device(device)
        model, config = load_segmentor(folder, target)
        return cls(model, config, target)

    @property
    def organ(self) -> str:
        return str(self.config["organ"])

    @property
    def organs(self) -> tuple[str, ...]:
        """The organs whose tumors the network segments (one, or several in one network)."""
        organs = self.config.get("organs")
        return tuple(str(o) for o in organs) if organs else (self.organ,)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The output label name of each network class: background, then per organ the organ
        and its tumor (the checkpoint's ``classes``; a one-organ checkpoint without them has
        background, organ, organ tumor)."""
        classes = self.config.get("classes")
        if classes:
            return tuple(sorted(classes, key=classes.get))
        return ("background", self.organ, f"{self.organ}_tumor")

    def segment(
        self,
        image: Volume,
        *,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
        probabilities: bool = False,
        slab_voxels: int = SLAB_VOXELS,
    ) -> SegmentationOutput:
        """Labels (uint8, output convention) on ``image``'s grid and, with ``probabilities``,
        the probability of each tumor class as ``round(255 * p)`` (uint8), by name.

        Sliding windows and the float16 class probabilities stay on the network's device; only
        slabs of the result come back (:func:`~tumorsynth.pipelines.predict_slabs.
        segment_in_slabs`).
        """
        names = self.class_names
        tumors = [c for c, name in enumerate(names) if name.endswith("_tumor")]
        window = window_transform(self.config["hu_window"])
        amp = self.device.type == "cuda"

        def predictor(batch: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                return self.model(batch)

        def windowed(hu: torch.Tensor) -> torch.Tensor:
            scaled = window({"image": hu})["image"]
            return scaled.as_tensor() if isinstance(scaled, MetaTensor) else scaled

        with torch.no_grad():
            out = segment_in_slabs(
                np.asarray(image.array),
                image.affine,
                self.config["spacing_mm"],
                predictor,
                windowed,
                tuple(self.config["patch_size"]),
                overlap=overlap,
                sw_batch_size=sw_batch_size,
                device=self.device,
                probabilities_of=tumors if probabilities else (),
                labels=[OUTPUT_LABELS.id_of(n) if c else 0 for c, n in enumerate(names)],
                slab_voxels=slab_voxels,
            )
        if out.labels.shape != image.shape:
            raise RuntimeError(f"prediction grid {out.labels.shape} != input {image.shape}")
        return SegmentationOutput(out.labels, {names[c]: p for c, p in out.probabilities.items()})

    def predict(
        self, image: Volume, *, overlap: float = 0.25, sw_batch_size: int = 4
    ) -> np.ndarray:
        """Labels (uint8, output convention) on ``image``'s grid."""
        return self.segment(image, overlap=overlap, sw_batch_size=sw_batch_size).labels


@dataclass
class SegmentationOutput:
    """A prediction on the input's grid: ``labels`` (uint8, output convention) and tumor
    probabilities as ``round(255 * p)`` (uint8) by output label name (``"liver_tumor"``)."""

    labels: np.ndarray
    probabilities: dict[str, np.ndarray]


def near_organ(
    organ_mask: np.ndarray, spacing_mm: Sequence[float], margin_mm: float = 5.0
) -> np.ndarray:
    """Voxels within about ``margin_mm`` of ``organ_mask`` (6-connected dilation in steps of
    the finest spacing); nothing when the mask is empty."""
    structure = ndi.generate_binary_structure(3, 1)
    steps = max(1, int(round(margin_mm / min(spacing_mm))))
    return ndi.binary_dilation(organ_mask, structure=structure, iterations=steps)


def restrict_to_organ(
    labels: np.ndarray,
    organ_mask: np.ndarray,
    tumor_id: int,
    spacing_mm: Sequence[float],
    margin_mm: float = 5.0,
) -> np.ndarray:
    """Drop predicted tumor voxels farther than ``margin_mm`` from the given organ mask."""
    out = labels.copy()
    out[(out == tumor_id) & ~near_organ(organ_mask, spacing_mm, margin_mm)] = 0
    return out


def probability_path(out_dir: str | os.PathLike[str], case_id: str, tumor: str) -> Path:
    """Where ``--save-probabilities`` writes the probability of ``tumor`` (an output label
    name such as ``liver_tumor``) for ``case_id``."""
    return Path(out_dir) / PROBABILITY_DIR / f"{case_id}_{tumor}.nii.gz"


def _save_probability(image: Volume, path: Path, probability: np.ndarray, tumor: str) -> Path:
    """Write a uint8 probability map (``round(255 * p)``) with ``image``'s affine, atomically."""
    header = image.header.copy() if image.header is not None else None
    if header is not None:
        header.set_data_dtype(np.uint8)
        header.set_slope_inter(1.0, 0.0)
        header["cal_min"], header["cal_max"] = 0, 255
    grid = Volume(image.array, image.affine, header)
    return save_volume(grid, path, array=probability, description=f"p({tumor}) x 255")


def _inputs(path: Path) -> list[tuple[str, Path]]:
    """(case id, image) pairs: one file, or the NIfTI files of a folder (nnU-Net ``_0000``).

    Case ids are validated (one safe path component) and must be unique: ``a.nii`` and
    ``a.nii.gz`` in one folder would write the same prediction.
    """
    if path.is_file():
        files = [path]
    elif not path.is_dir():
        raise InputError(
            str(path), "input does not exist", fix="pass a CT file or a folder of them"
        )
    else:
        files = sorted(  # NIfTI files, the CT channel (_0000) of nnU-Net's channels
            p
            for p in path.iterdir()
            if not p.name.startswith(".") and (split_case_name(p) or ("", 1))[1] in (None, 0)
        )
        if not files:
            raise InputError(str(path), "holds no .nii/.nii.gz images")
    cases: dict[str, Path] = {}
    for file in files:
        case_id = check_case_id(case_id_from(file), where=str(file))
        if case_id in cases:
            raise InputError(
                str(file),
                f"case id {case_id!r} is also that of {cases[case_id].name}; both predictions "
                f"would be written to {case_id}.nii.gz",
                fix="keep one of them",
            )
        cases[case_id] = file
    return list(cases.items())


def _organ_mask_files(
    organ_masks: str | os.PathLike[str] | None, cases: list[tuple[str, Path]]
) -> dict[str, Path]:
    """The organ mask of each case (one file for all, or ``<case>.nii.gz`` in a folder),
    checked to exist before any case is predicted."""
    if organ_masks is None:
        return {}
    root = Path(organ_masks)
    masks = {case_id: root / f"{case_id}.nii.gz" if root.is_dir() else root for case_id, _ in cases}
    for case_id, mask in masks.items():
        if not mask.is_file():
            raise InputError(
                str(mask),
                f"organ mask of case {case_id!r} does not exist",
                fix="pass --organ-mask FILE or a folder with <case>.nii.gz per input",
            )
    return masks


def predict_files(
    checkpoint: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    overlap: float = 0.25,
    organ_masks: str | os.PathLike[str] | None = None,
    organ_mask_label_map: str = "totalsegmentator",
    save_probabilities: bool = False,
    progress: bool = True,
) -> list[tuple[Path, float]]:
    """Segment every input CT into ``out_dir/<case>.nii.gz``; returns (file, seconds) pairs.

    ``organ_masks`` (a label file, or a folder with ``<case>.nii.gz`` per case) restricts tumors
    to the organ the network was trained for. ``save_probabilities`` also writes each tumor
    class's probability to ``out_dir/probabilities/<case>_<organ>_tumor.nii.gz`` (module
    docstring), before the labels: a case whose labels exist has its probabilities too.
    """
    cases = _inputs(Path(inputs))
    masks = _organ_mask_files(organ_masks, cases)
    sources = [*(path for _, path in cases), *masks.values()]
    # no prediction may land on an input CT or organ mask
    check_outputs_not_inputs([Path(out_dir) / f"{case_id}.nii.gz" for case_id, _ in cases], sources)
    mask_map = resolve_label_map(organ_mask_label_map) if masks else None
    segmentor = Segmentor.from_pretrained(checkpoint, device)  # after the cheap input checks
    organs = [
        o
        for o in segmentor.organs
        if mask_map is None or o in mask_map.organs or mask_map.generic_organ
    ]
    if mask_map is not None and not organs:
        raise InputError(
            "--organ-mask-label-map",
            f"label map {mask_map.name!r} names none of the checkpoint's organs "
            f"{list(segmentor.organs)}",
            fix="pass the label map of the organ masks",
        )
    if save_probabilities:  # their names need the checkpoint's organs
        tumors = [name for name in segmentor.class_names if name.endswith("_tumor")]
        check_outputs_not_inputs(
            [probability_path(out_dir, c, tumor) for c, _ in cases for tumor in tumors], sources
        )
    written = []
    with output_dir(out_dir) as out:
        for case_id, path in tqdm(cases, disable=not progress, desc="predicting", unit="case"):
            image = load_image(path)
            start = time.perf_counter()
            far: dict[str, np.ndarray] = {}  # organ -> voxels too far from it for its tumors
            if mask_map is not None:  # checked before the network runs, not minutes after
                organ_label = load_label(masks[case_id])
                check_same_grid(image, organ_label)
                for organ in organs:
                    organ_mask = label_mask(organ_label.array, mask_map.organ_ids(organ))
                    far[organ] = ~near_organ(organ_mask, image.spacing_mm)
                del organ_label
            result = segmentor.segment(image, overlap=overlap, probabilities=save_probabilities)
            labels = result.labels
            for organ, outside in far.items():
                tumor = f"{organ}_tumor"
                labels[(labels == OUTPUT_LABELS.id_of(tumor)) & outside] = 0
                if tumor in result.probabilities:
                    result.probabilities[tumor][outside] = 0
            seconds = time.perf_counter() - start
            for tumor, probability in result.probabilities.items():
                _save_probability(image, probability_path(out, case_id, tumor), probability, tumor)
            target = save_volume(image, out / f"{case_id}.nii.gz", array=labels)
            written.append((target, seconds))
    return written
