"""The adversarial (FreeTumor-class) appearance generator: a trained network changes the scan's own
intensities inside the tumor mask, and the result is blended back at native spacing.

Shapes, placement and mass effect come from the core, as for every generator. For each tumor the
generator reads a cube of ``crop_size`` voxels at the model's spacing around it (zoomed out when
the tumor would not fit with its soft edge), shifted so its parenchyma sits at the model's
reference HU; the network predicts a bounded, smooth change inside the mask
(:class:`~tumorsynth.models.adversarial.TumorAdversary`), and only
``w * (synthetic - background)`` is written, ``w`` the tumor's Gaussian-edged soft mask within
where tumor may lie. By default the change's content finer than 2 mm is replaced by the scan's
own noise, as the other generators do. Tumors are rendered in batches; each tumor's noise comes
from its own seed, so a record replays voxel for voxel (same device and torch version).

Records pin the checkpoint by the hashes of its files (``weights_sha256``), in the appearance
spec and in the options the generator is rebuilt from; other files are refused.

A change of the scan's own intensities would leave a hollow organ's lumen air inside a wall tumor
(at most ``max_change_hu`` brighter): the lumen in the tumor is filled with the wall's HU before
the network reads it (:mod:`~tumorsynth.generators.model_grid`, which also renders long wall
tumors in windows along their segment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tumorsynth.generators.model_grid import (
    CubeGenerator,
    blend_back,
    cube_spec,
    read_cubes,
    split_windows,
    window_seeds,
)
from tumorsynth.generators.protocol import RenderInput, TumorSite
from tumorsynth.models.adversarial import TumorAdversary

__all__ = ["AdversarialGenerator"]

#: Bumped when records change meaning or voxels.
_VERSION = "1.0"


class AdversarialGenerator(CubeGenerator):
    """Tumor appearance from a generator trained by ``tumorsynth train-adversarial``.

    Parameters
    ----------
    checkpoint
        The ``model`` folder that training writes, or a loaded :class:`TumorAdversary`.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...
    max_batch
        Most tumors per network call.
    edge_width_mm
        Range of the blend edge's Gaussian std (drawn per tumor).
    keep_scan_noise
        Replace the change's content finer than 2 mm by the scan's own noise there.
    weights_sha256
        The hashes the checkpoint's files must have (from records); other files are refused.
    """

    name = "adversarial"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | TumorAdversary | None = None,
        *,
        device: str = "auto",
        max_batch: int = 8,
        edge_width_mm: tuple[float, float] = (0.8, 1.6),
        keep_scan_noise: bool = True,
        weights_sha256: Mapping[str, str] | None = None,
    ) -> None:
        self._setup(
            checkpoint,
            TumorAdversary,
            device=device,
            command="train-adversarial",
            version=_VERSION,
            max_batch=max_batch,
            edge_width_mm=edge_width_mm,
            keep_scan_noise=keep_scan_noise,
            weights_sha256=weights_sha256,
        )

    @property
    def options(self) -> dict[str, Any]:
        """What rebuilds this generator (its device is the replaying machine's choice)."""
        return {
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.model.files),
            "max_batch": self.max_batch,
            "edge_width_mm": list(self.edge_width_mm),
            "keep_scan_noise": self.keep_scan_noise,
        }

    @property
    def cube(self) -> tuple[int, tuple[float, float, float]]:
        return self.model.config.crop_size, self.model.config.spacing_mm

    @property
    def files(self) -> Mapping[str, str]:
        return self.model.files

    # -- random side ---------------------------------------------------------------------------
    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]:
        """Noise seed, zoom and blend edge of the tumor at ``site``."""
        edge = float(rng.uniform(*self.edge_width_mm))
        config = self.model.config
        cubes = cube_spec(site, edge, config.crop_size, config.spacing_mm)
        return {
            "noise_seed": int(rng.integers(2**63 - 1)),
            "zoom": cubes.pop("zoom"),
            "edge_width_mm": edge,
            "scan_noise": self.keep_scan_noise,
            "parenchyma_hu": float(site.parenchyma.median_hu),
            "noise_hu": float(site.parenchyma.noise_hu),
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.model.files),
            **cubes,  # hollow organs: windows along a wall tumor, the tissue range
        }

    # -- deterministic side --------------------------------------------------------------------
    def render_batch(
        self, specs: Sequence[Mapping[str, Any]], inputs: Sequence[RenderInput]
    ) -> list[np.ndarray]:
        """Render several tumors, ``max_batch`` cubes per network call (a wall tumor's windows
        are cubes of their own, each with its own seed)."""
        for spec in specs:
            self._check_files(spec.get("weights_sha256"), spec.get("checkpoint"))
        out: list[np.ndarray] = []
        config = self.model.config
        for start in range(0, len(specs), self.max_batch):
            chunk = list(specs[start : start + self.max_batch])
            chunk_inputs = list(inputs[start : start + self.max_batch])
            crops, masks, grids = read_cubes(
                chunk, chunk_inputs, config.spacing_mm, config.crop_size, self.model.device
            )
            seeds = [seed for spec in chunk for seed in window_seeds(spec)]
            hosts = [float(s["parenchyma_hu"]) for s, g in zip(chunk, grids) for _ in g]
            synthetic = torch.cat(
                [
                    self.model.sample(
                        crops[part],
                        masks[part],
                        hosts[part],
                        [torch.Generator().manual_seed(s) for s in seeds[part]],
                    )
                    for part in (
                        slice(k, k + self.max_batch) for k in range(0, len(seeds), self.max_batch)
                    )
                ]
            )
            for spec, inp, own, cubes in zip(
                chunk, chunk_inputs, grids, split_windows(synthetic, grids), strict=True
            ):
                out.append(blend_back(spec, inp, own, cubes))
        return out
