"""The quality filter (FreeTumor's): keep a synthetic tumor only when a segmentor recognizes it.

After a tumor is rendered, a trained segmentor (a checkpoint of ``tumorsynth train``) predicts on a
cube around it, at the network's own spacing and HU window, read straight from the case at native
spacing (:class:`~tumorsynth.models.crop_grid.CropGrid`): the cost grows with the tumors, not with
the scan. The prediction goes back onto the tumor's voxels, and the tumor's score is the fraction
of them predicted as tumor; it passes when the score is above ``threshold`` (FreeTumor: 0.7).

What happens to a tumor that fails (a redraw of its appearance with a seed derived from the
first, up to ``retries`` times, then ``on_fail``) is the renderer's part
(:class:`~tumorsynth.pipelines.render.Renderer`); this module only scores, in batches of up to
``max_batch`` tumors per network call. Each record of a filtered tumor gets
:meth:`TumorFilter.note`: verdict, score, attempts, threshold and the hashes of the segmentor's
files. Needs the ``torch`` extra (the synthesis core imports this module only when a filter is
asked for).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.models.device import pick_device
from tumorsynth.models.segmentors import load_segmentor_files, window_transform
from tumorsynth.pipelines.filter_settings import check_judging

__all__ = ["FilterInput", "TumorFilter"]
#: The tumor class of a one-organ segmentor (background, organ, tumor) whose checkpoint lists no
#: ``classes`` (several organs: each ``<organ>_tumor`` class of ``classes``).
_TUMOR_CLASS = 2


@dataclass(frozen=True)
class FilterInput:
    """One rendered tumor in a crop of its case.

    Attributes
    ----------
    image
        float32 HU of the crop, the tumor rendered in (and any tumor committed before it).
    tumor
        bool, same shape: the tumor's voxels.
    spacing_mm
        Voxel size of the crop's axes.
    affine
        The case's affine (only its orientation is used).
    """

    image: np.ndarray
    tumor: np.ndarray
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray


class TumorFilter:
    """A segmentor that scores rendered tumors of its organ (:meth:`load` reads a checkpoint).

    Parameters
    ----------
    model
        The network: (B, 1, N, N, N) windowed CT -> (B, 3, N, N, N) logits (background, organ,
        tumor), in eval mode.
    config
        The checkpoint's config: ``organ``, ``spacing_mm``, ``hu_window``, ``patch_size``.
    checkpoint, files
        Where it was read from and the sha256 of its files (what records name).
    threshold
        A tumor passes when more than this fraction of its voxels are predicted as tumor.
    retries
        Redraws of a failing tumor's appearance before ``on_fail`` applies.
    on_fail
        ``keep``: the last attempt stays in the case, its record says ``rejected``; ``skip``: it
        is left out, and the case lists it.
    max_batch
        Most tumors per network call.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: Mapping[str, Any],
        *,
        checkpoint: str = "<in memory>",
        files: Mapping[str, str] | None = None,
        threshold: float = 0.7,
        retries: int = 3,
        on_fail: Literal["keep", "skip"] = "keep",
        max_batch: int = 8,
    ) -> None:
        check_judging(threshold, retries, on_fail)
        if int(max_batch) < 1:
            raise InputError("max_batch", f"expected >= 1, found {max_batch}")
        self.model = model.eval()
        self.checkpoint = checkpoint
        self.files = dict(files or {})
        self.device = next(iter(model.parameters()), torch.zeros(())).device
        self.organ = str(config["organ"])
        self.organs = tuple(str(o) for o in config.get("organs") or (self.organ,))
        classes = config.get("classes") or {}
        # a tumor of any organ the segmentor knows counts (several organs in one network)
        self.tumor_classes = [int(c) for n, c in classes.items() if n.endswith("_tumor")] or [
            _TUMOR_CLASS
        ]
        self.spacing_mm = tuple(float(s) for s in config["spacing_mm"])
        self.cube = int(min(config["patch_size"]))
        self.window = window_transform(config["hu_window"])
        self.threshold = float(threshold)
        self.retries = int(retries)
        self.on_fail = on_fail
        self.max_batch = int(max_batch)

    @classmethod
    def load(
        cls, checkpoint: str | os.PathLike[str], *, device: str = "auto", **settings: Any
    ) -> TumorFilter:
        """The filter of a segmentor folder written by ``tumorsynth train`` (hashes checked),
        on ``device`` (``auto``: a GPU when there is one); ``settings`` as for the class."""
        folder = Path(checkpoint)
        if not folder.is_dir():
            raise InputError(
                str(folder),
                "expected a segmentor checkpoint folder (the model folder `tumorsynth train` "
                "writes), found nothing there",
            )
        model, config, files = load_segmentor_files(folder, pick_device(device))
        return cls(model, config, checkpoint=str(folder), files=files, **settings)

    def applies_to(self, organ: str) -> bool:
        """Whether this filter judges tumors of ``organ`` (its segmentor's organs)."""
        return organ in self.organs

    @property
    def field_mm(self) -> float:
        """Edge of the cube the segmentor sees (mm): the crop an input should cover."""
        return self.cube * max(self.spacing_mm)

    def passes(self, score: float) -> bool:
        return score > self.threshold

    @torch.no_grad()
    def score(self, items: Sequence[FilterInput]) -> list[float]:
        """Per tumor, the fraction of its voxels the segmentor predicts as tumor (voxels outside
        the cube, for a tumor larger than it, are not counted)."""
        scores: list[float] = []
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            grids = [self._grid(item) for item in chunk]
            cubes = torch.cat(
                [
                    grid.read(torch.from_numpy(np.ascontiguousarray(item.image, np.float32)))
                    for grid, item in zip(grids, chunk, strict=True)
                ]
            )
            net_in = self.window({"image": cubes})["image"]
            amp = self.device.type == "cuda"
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = self.model(torch.as_tensor(net_in).to(self.device))
            found = logits.float().argmax(1)
            tumor = torch.isin(found, torch.tensor(self.tumor_classes, device=found.device))
            tumor = tumor.float().cpu()
            for cube, grid, item in zip(tumor, grids, chunk, strict=True):
                scores.append(_fraction(cube, grid, item))
        return scores

    def _grid(self, item: FilterInput) -> CropGrid:
        center = np.argwhere(item.tumor).mean(axis=0)
        return CropGrid(
            tuple(float(c) for c in center),  # type: ignore[arg-type]
            item.spacing_mm,
            orientation_of(item.affine),
            self.spacing_mm,  # type: ignore[arg-type]
            self.cube,
        )

    def note(self, score: float, attempts: int) -> dict[str, Any]:
        """What a filtered tumor's record says about the filter."""
        return {
            "verdict": "passed" if self.passes(score) else "rejected",
            "score": round(float(score), 4),
            "threshold": self.threshold,
            "attempts": int(attempts),
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.files),
        }


def _fraction(cube: torch.Tensor, grid: CropGrid, item: FilterInput) -> float:
    """The fraction of ``item``'s tumor voxels inside the cube that the cube labels tumor (the
    prediction is written back onto the tumor's bounding box only)."""
    found = Box.of_mask(item.tumor)
    if found is None:
        return 0.0
    back = grid.write_back(cube, found.origin, found.shape).numpy() > 0.5
    points = grid.model_points(found.origin, found.shape)
    inside = np.all((points >= -0.5) & (points <= grid.size - 0.5), axis=-1)
    counted = item.tumor[found.slices] & inside
    if not counted.any():
        return 0.0
    return float(back[counted].mean())
