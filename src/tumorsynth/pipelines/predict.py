"""Predict tumor (and organ) labels with a trained segmentor, on the input's own grid.

The CT is oriented to RAS, resampled to the network's spacing and windowed by the same transforms
as in training (:func:`~tumorsynth.models.segmentors.resample_transforms`, ``window_transform``),
segmented with Gaussian-weighted sliding windows, and the class probabilities are resampled back
onto the input grid (MONAI's tracked inverse of the spatial transforms) before the argmax. Output
labels follow the tumorsynth convention (e.g. 1 liver, 2 liver tumor) and are written with the
input's affine and header. Needs the ``torch`` extra.
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
from monai.inferers import sliding_window_inference
from monai.transforms import Compose
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
from tumorsynth.models.segmentors import load_segmentor, resample_transforms, window_transform

__all__ = ["Segmentor", "predict_files", "restrict_to_organ"]


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

    def predict(
        self, image: Volume, *, overlap: float = 0.25, sw_batch_size: int = 4
    ) -> np.ndarray:
        """Labels (uint8, output convention) on ``image``'s grid."""
        spatial = Compose(resample_transforms(self.config["spacing_mm"]))
        window = window_transform(self.config["hu_window"])
        # Resampling there and back runs on the network's device (grid_sample on the GPU): on an
        # H100 it was most of a 512x512x150 prediction when done on the CPU.
        voxels = torch.as_tensor(np.asarray(image.array, dtype=np.float32))[None].to(self.device)
        tensor = MetaTensor(voxels, affine=torch.as_tensor(image.affine, dtype=torch.float64))
        with torch.no_grad():
            prepared = spatial({"image": tensor})["image"]
            net_in = window({"image": prepared})["image"].as_tensor()[None]
            amp = self.device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = sliding_window_inference(
                    net_in,
                    tuple(self.config["patch_size"]),
                    sw_batch_size,
                    self.model,
                    overlap=overlap,
                    mode="gaussian",
                )
            probs = torch.softmax(logits.float(), dim=1)[0]  # type: ignore[union-attr]
            del logits, net_in
            restored = spatial.inverse(
                {
                    "image": MetaTensor(
                        probs, meta=prepared.meta, applied_operations=prepared.applied_operations
                    )
                }
            )["image"]
            classes = restored.as_tensor().argmax(0).to(torch.uint8).cpu().numpy()
        if classes.shape != image.shape:
            raise RuntimeError(f"prediction grid {classes.shape} != input {image.shape}")
        organ_id = OUTPUT_LABELS.id_of(self.organ)
        tumor_id = OUTPUT_LABELS.id_of(f"{self.organ}_tumor")
        lut = np.array([0, organ_id, tumor_id], dtype=np.uint8)
        return lut[classes]


def restrict_to_organ(
    labels: np.ndarray,
    organ_mask: np.ndarray,
    tumor_id: int,
    spacing_mm: Sequence[float],
    margin_mm: float = 5.0,
) -> np.ndarray:
    """Drop predicted tumor voxels farther than ``margin_mm`` from the given organ mask."""
    if not organ_mask.any():
        out = labels.copy()
        out[out == tumor_id] = 0
        return out
    structure = ndi.generate_binary_structure(3, 1)
    steps = max(1, int(round(margin_mm / min(spacing_mm))))
    near = ndi.binary_dilation(organ_mask, structure=structure, iterations=steps)
    out = labels.copy()
    out[(out == tumor_id) & ~near] = 0
    return out


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
    progress: bool = True,
) -> list[tuple[Path, float]]:
    """Segment every input CT into ``out_dir/<case>.nii.gz``; returns (file, seconds) pairs.

    ``organ_masks`` (a label file, or a folder with ``<case>.nii.gz`` per case) restricts tumors
    to the organ the network was trained for.
    """
    cases = _inputs(Path(inputs))
    masks = _organ_mask_files(organ_masks, cases)
    check_outputs_not_inputs(  # no prediction may land on an input CT or organ mask
        [Path(out_dir) / f"{case_id}.nii.gz" for case_id, _ in cases],
        [*(path for _, path in cases), *masks.values()],
    )
    mask_map = resolve_label_map(organ_mask_label_map) if masks else None
    segmentor = Segmentor.from_pretrained(checkpoint, device)  # after the cheap input checks
    tumor_id = OUTPUT_LABELS.id_of(f"{segmentor.organ}_tumor")
    written = []
    with output_dir(out_dir) as out:
        for case_id, path in tqdm(cases, disable=not progress, desc="predicting", unit="case"):
            image = load_image(path)
            start = time.perf_counter()
            labels = segmentor.predict(image, overlap=overlap)
            if mask_map is not None:
                organ = load_label(masks[case_id])
                check_same_grid(image, organ)
                organ_mask = label_mask(organ.array, mask_map.organ_ids(segmentor.organ))
                labels = restrict_to_organ(labels, organ_mask, tumor_id, image.spacing_mm)
            seconds = time.perf_counter() - start
            target = save_volume(image, out / f"{case_id}.nii.gz", array=labels)
            written.append((target, seconds))
    return written
