"""The learned (DiffTumor-class) appearance generator: a trained latent diffusion checkpoint fills
the tumor's mask in a model-grid crop, and the result is blended back at native spacing.

Shapes and placement come from the core, exactly as for the heuristic generator. For each tumor
the generator reads a cube of ``crop_size`` voxels at the model's spacing around it (zoomed out
when the tumor would not fit with a margin), samples the tumor into the mask with a few DDIM steps,
and writes back only ``w * synthetic + (1 - w) * background``, where ``w`` is the tumor's soft mask
(a Gaussian-blurred edge) restricted to where tumor may be; by default the sampled content
finer than 2 mm is replaced by the scan's own noise, as the heuristic generator does. Nothing
outside the tumor and its blend margin changes, in any organ (the published code replaces whole
pancreas crops).

Several tumors are rendered as one batch on CPU or GPU; each tumor's initial noise comes from its
own seeded ``torch.Generator``, so a record replays to the same voxels (same device and torch
version; floating point on other hardware may differ in the last bits).

The checkpoint learned its contrast in hosts of one contrast phase (recorded as
``trained_enhancement``). A tumor-to-organ contrast is mostly contrast uptake, so in a scan of
another phase the sampled tumor's deviation from the parenchyma is scaled by the ratio of the two
enhancements (the organ profile's ``enhancement``, as the heuristic generator scales its
contrasts): about 0.5 for a non-contrast liver under a portal-venous checkpoint.

Each tumor is sampled as early-stage or larger (DiffTumor trains the two apart) by the equivalent
diameter of its rendered mask, measured as its record measures it, so the class always agrees with
``record.early_stage``.

Hollow organs (colon, esophagus): the lumen a wall tumor takes over is filled with the wall's HU
before the model reads it, and a long wall tumor may be sampled in several windows along its
segment (:mod:`~tumorsynth.generators.model_grid`). A wall tumor's equivalent diameter is large
for its stage (a thin shell round a wide tube: half of the tiny colon tumors, few of the small
ones, are early by it), so most take the larger class's steps.

A record pins the checkpoint by the hashes of every file that shapes the voxels (``weights_sha256``:
both config.json files and both weights files), in its appearance spec and in the generator
options it is rebuilt from, and the generator's ``version`` carries one hash of them; loading with
recorded hashes, and rendering, refuse other files, naming each one that differs. The folder may
move (``replay --checkpoint NEWDIR``): the hashes, not the path, decide.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tumorsynth.errors import InputError
from tumorsynth.generators.model_grid import (
    CubeGenerator,
    blend_back,
    cube_spec,
    read_cubes,
    split_windows,
    window_seeds,
)
from tumorsynth.generators.protocol import RenderInput, TumorSite
from tumorsynth.models.tumor_diffusion import TumorDiffusion, size_class_of
from tumorsynth.organs import equivalent_diameter_mm

__all__ = ["DiffusionGenerator"]

#: Bumped when records change meaning or voxels: 1.1 pins every checkpoint file
#: (``weights_sha256``); 1.2 takes the early/larger class from the rendered tumor's equivalent
#: diameter (the record's ``early_stage``), no longer from the drawn radii; 1.3 scales the
#: tumor's deviation from its host to the scan's contrast phase (``contrast_scale``; records
#: without it replay unscaled).
_VERSION = "1.3"


class DiffusionGenerator(CubeGenerator):
    """Tumor appearance from a trained latent diffusion model (``tumorsynth train-diffusion``).

    Parameters
    ----------
    checkpoint
        The ``model`` folder written by ``train-diffusion``, or a loaded :class:`TumorDiffusion`.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...
    steps
        DDIM steps for every tumor; None: the checkpoint's per size class (4 early, 50 larger).
    amp
        bf16 autocast on CUDA.
    max_batch
        Most tumors per network call.
    edge_width_mm
        Range of the blend edge's Gaussian std (drawn per tumor).
    keep_scan_noise
        Replace the sampled tumor's content finer than 2 mm by the scan's own noise there (as the
        heuristic generator does): the autoencoder smooths CT noise away, and a tumor smoother
        than the tissue around it is a shortcut a segmentor would learn.
    scale_to_phase
        Scale each tumor's deviation from its host by the enhancement of this scan's organ over
        the checkpoint's ``trained_enhancement`` (no scaling for checkpoints that lack it).
    weights_sha256
        The hashes the checkpoint's files must have (from records: ``options``); other files are
        refused, naming each one that differs.

    Examples
    --------
    With a checkpoint that ``tumorsynth train-diffusion`` wrote (not run as a doctest)::

        gen = DiffusionGenerator("runs/diffusion_liver/model")
        out = synthesize_case(ct, seg, ..., generator=gen)
    """

    name = "diffusion"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | TumorDiffusion | None = None,
        *,
        device: str = "auto",
        steps: int | None = None,
        amp: bool = True,
        max_batch: int = 8,
        edge_width_mm: tuple[float, float] = (0.8, 1.6),
        keep_scan_noise: bool = True,
        scale_to_phase: bool = True,
        weights_sha256: Mapping[str, str] | None = None,
    ) -> None:
        self._setup(
            checkpoint,
            TumorDiffusion,
            device=device,
            command="train-diffusion",
            version=_VERSION,
            max_batch=max_batch,
            edge_width_mm=edge_width_mm,
            keep_scan_noise=keep_scan_noise,
            weights_sha256=weights_sha256,
        )
        if steps is not None and steps < 1:
            raise InputError("steps", f"expected >= 1 sampling steps, found {steps}")
        self.steps = steps
        self.amp = amp
        self.scale_to_phase = bool(scale_to_phase)

    @property
    def options(self) -> dict[str, Any]:
        """What rebuilds this generator (its device is the replaying machine's choice)."""
        return {
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.model.files),
            "steps": self.steps,
            "amp": self.amp,
            "max_batch": self.max_batch,
            "edge_width_mm": list(self.edge_width_mm),
            "keep_scan_noise": self.keep_scan_noise,
            "scale_to_phase": self.scale_to_phase,
        }

    @property
    def cube(self) -> tuple[int, tuple[float, float, float]]:
        return self.model.autoencoder_config.crop_size, self.model.autoencoder_config.spacing_mm

    @property
    def files(self) -> Mapping[str, str]:
        return self.model.files

    # -- random side ---------------------------------------------------------------------------
    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]:
        """Noise seed, zoom and blend edge for the tumor at ``site`` (its early/larger class is
        measured when it is rendered, :func:`_measured_size_class`)."""
        edge = float(rng.uniform(*self.edge_width_mm))
        ae = self.model.autoencoder_config
        cubes = cube_spec(site, edge, ae.crop_size, ae.spacing_mm)
        return {
            "noise_seed": int(rng.integers(2**63 - 1)),
            "steps": self.steps,
            "zoom": cubes.pop("zoom"),
            "edge_width_mm": edge,
            "scan_noise": self.keep_scan_noise,
            "parenchyma_hu": float(site.parenchyma.median_hu),
            "noise_hu": float(site.parenchyma.noise_hu),
            "contrast_scale": self._contrast_scale(site),
            "checkpoint": self.checkpoint,
            "weights_sha256": dict(self.model.files),
            **cubes,  # hollow organs: windows along a wall tumor, the tissue range
        }

    def _contrast_scale(self, site: TumorSite) -> float:
        """This scan's enhancement over the training hosts' (1 without a recorded phase)."""
        trained = self.model.trained_enhancement
        if not self.scale_to_phase or trained is None:
            return 1.0
        here = site.profile.appearance.enhancement(float(site.parenchyma.median_hu))
        return round(here / float(trained), 4)

    # -- deterministic side --------------------------------------------------------------------
    def render_batch(
        self, specs: Sequence[Mapping[str, Any]], inputs: Sequence[RenderInput]
    ) -> list[np.ndarray]:
        """Render several tumors; they are batched by equal step count, ``max_batch`` tumors at
        a time and ``max_batch`` cubes per network call (a long wall tumor may have several)."""
        for spec in specs:
            self._check_files(spec.get("weights_sha256"), spec.get("checkpoint"))
        classes = [_measured_size_class(inp) for inp in inputs]
        out: list[np.ndarray | None] = [None] * len(specs)
        by_steps: dict[int, list[int]] = {}
        for i, (spec, size_class) in enumerate(zip(specs, classes, strict=True)):
            steps = int(spec["steps"] or self.model.config.sample_steps[size_class])
            by_steps.setdefault(steps, []).append(i)
        for steps, indices in sorted(by_steps.items()):
            for start in range(0, len(indices), self.max_batch):
                chunk = indices[start : start + self.max_batch]
                for i, new in zip(
                    chunk,
                    self._render_chunk(
                        [specs[i] for i in chunk],
                        [inputs[i] for i in chunk],
                        [classes[i] for i in chunk],
                        steps,
                    ),
                    strict=True,
                ):
                    out[i] = new
        return out  # type: ignore[return-value]

    def _render_chunk(
        self,
        specs: Sequence[Mapping[str, Any]],
        inputs: Sequence[RenderInput],
        classes: Sequence[int],
        steps: int,
    ) -> list[np.ndarray]:
        """One network call per ``max_batch`` cubes (a wall tumor's windows are cubes of their
        own, each sampled from its own seed)."""
        ae = self.model.autoencoder_config
        crops, masks, grids = read_cubes(
            specs, inputs, ae.spacing_mm, ae.crop_size, self.model.device
        )
        seeds = [seed for spec in specs for seed in window_seeds(spec)]
        per_cube = [
            (int(c), float(s["parenchyma_hu"]))
            for s, g, c in zip(specs, grids, classes, strict=True)
            for _ in g
        ]
        sampled = []
        for start in range(0, len(seeds), self.max_batch):
            part = slice(start, start + self.max_batch)
            sampled.append(
                self.model.sample(
                    crops[part],
                    masks[part],
                    [c for c, _ in per_cube[part]],
                    steps=steps,
                    generators=[torch.Generator().manual_seed(s) for s in seeds[part]],
                    amp=self.amp,
                    host_hu=[h for _, h in per_cube[part]],
                )
            )
        cubes = split_windows(torch.cat(sampled), grids)
        return [
            blend_back(spec, inp, own, cube)
            for spec, inp, own, cube in zip(specs, inputs, grids, cubes, strict=True)
        ]


def _measured_size_class(inputs: RenderInput) -> int:
    """``EARLY`` or ``LARGER``: the tumor's class by the equivalent diameter of its rendered mask
    (voxels x voxel volume), the measurement its record's ``early_stage`` is made of."""
    volume_mm3 = int(np.count_nonzero(inputs.tumor_mask)) * float(np.prod(inputs.spacing_mm))
    return size_class_of(equivalent_diameter_mm(volume_mm3))
