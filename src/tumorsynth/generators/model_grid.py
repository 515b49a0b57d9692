"""What the learned generators share: a tumor's cube on the model's grid, read from the render
inputs, and the result blended back at native spacing.

A learned model works on cubes of ``crop_size`` voxels at its spacing (RAS axes), zoomed out when
the tumor and its soft edge would not fit. The cube is read from the tumor's context crop (the
tumor's own crop plus what the generator asked to read around it), its mask from the tumor's
rendered shape, and the model's output goes back onto the native crop only where the tumor's
soft mask is above 0, restricted to where tumor may lie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.generators.noise import low_pass, scan_noise
from tumorsynth.generators.protocol import RenderInput, TumorGeneratorBase, TumorSite
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.shapes.ellipsoid import soft_mask

__all__ = ["CubeGenerator", "blend_back", "check_files", "cube_zoom", "read_cubes"]

#: The tumor and its blend margin should fill at most this fraction of the cube's edge.
FIT_FRACTION = 0.7


def cube_zoom(site: TumorSite, edge_width_mm: float, crop_size: int, spacing_mm: Sequence[float]):
    """How much the model's grid is zoomed out so the tumor and its 4.5-std soft edge fill at
    most :data:`FIT_FRACTION` of the cube (1: the model's own spacing)."""
    needed_mm = 2.0 * (float(np.max(site.shape.half_extents_mm())) + 4.5 * edge_width_mm)
    cube_mm = crop_size * min(spacing_mm)
    return round(max(1.0, needed_mm / (FIT_FRACTION * cube_mm)), 4)


def read_cubes(
    specs: Sequence[Mapping[str, Any]],
    inputs: Sequence[RenderInput],
    spacing_mm: Sequence[float],
    crop_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, list[CropGrid]]:
    """Per tumor, its cube of HU from the context crop and its mask (0/1), both (B, 1, N, N, N)
    on ``device``, and the grid on the tumor's own crop that results go back through. Each
    spec's ``zoom`` scales the model spacing."""
    crops, masks, grids = [], [], []
    for spec, inp in zip(specs, inputs, strict=True):
        center = np.asarray(inp.shape.center_vox, float) - np.asarray(inp.shape.box.origin)
        orientation = orientation_of(inp.affine)
        spacing = tuple(s * float(spec["zoom"]) for s in spacing_mm)
        grid = CropGrid(tuple(center), inp.spacing_mm, orientation, spacing, crop_size)  # type: ignore[arg-type]
        in_context = CropGrid(
            tuple(center + np.asarray(inp.context_offset)),
            inp.spacing_mm,
            orientation,
            spacing,  # type: ignore[arg-type]
            crop_size,
        )
        crops.append(
            in_context.read(torch.from_numpy(np.ascontiguousarray(inp.context)).to(device))
        )
        tumor = torch.from_numpy(inp.tumor_mask.astype(np.float32)).to(device)
        masks.append((grid.read(tumor) > 0.5).float())
        grids.append(grid)
    return torch.cat(crops), torch.cat(masks), grids


def blend_back(
    spec: Mapping[str, Any], inp: RenderInput, grid: CropGrid, cube: torch.Tensor
) -> np.ndarray:
    """``background + w * (synthetic - background)`` on the native crop, only where the soft
    mask ``w`` (edge ``spec["edge_width_mm"]``, within ``inp.allowed``) is above 0.

    The synthetic HU are ``cube`` written back; their deviation from the parenchyma
    (``spec["parenchyma_hu"]``) is scaled by ``spec["contrast_scale"]`` (1 when absent), and
    with ``spec["scan_noise"]`` their content finer than 2 mm is replaced by the scan's own
    noise (seeded by ``spec["noise_seed"]``).
    """
    weight = soft_mask(inp.shape.distance_mm, float(spec["edge_width_mm"]))
    weight *= inp.allowed
    new = inp.image.astype(np.float32, copy=True)
    found = Box.of_mask(weight > 0)
    if found is None:
        return new
    box = found.slices
    synthetic = grid.write_back(cube, found.origin, found.shape).float().cpu().numpy()
    host = float(spec["parenchyma_hu"])
    synthetic = host + float(spec.get("contrast_scale", 1.0)) * (synthetic - host)
    w = weight[box]
    background = new[box]
    if spec.get("scan_noise"):
        noise = scan_noise(
            background,
            low_pass(background, inp.spacing_mm),
            w,
            host,
            float(spec["noise_hu"]),
            int(spec["noise_seed"]) % (2**31) + 1,
        )
        synthetic = low_pass(synthetic, inp.spacing_mm) + noise
    new[box] = background + w * (synthetic - background)
    return new


def check_files(
    where: str, recorded: object, own: Mapping[str, str], made_from: object = None
) -> None:
    """Refuse tumors made by other checkpoint files than ``own`` (name -> sha256), naming each
    file that differs."""
    if not isinstance(recorded, Mapping):
        raise InputError(
            where,
            f"the tumor's record has no weights_sha256 (found {recorded!r}); it cannot be "
            "verified against this checkpoint",
            fix="synthesize it again with this version of tumorsynth",
        )
    differ = [
        f"{name}: record {str(recorded.get(name))[:12]}..., checkpoint {str(own.get(name))[:12]}..."
        for name in sorted(set(recorded) | set(own))
        if recorded.get(name) != own.get(name)
    ]
    if differ:
        raise InputError(
            where,
            "the tumor was made by other files"
            + (f" (made from {made_from})" if made_from else "")
            + ": "
            + "; ".join(differ)
            + "; replay would not be exact",
            fix="load the checkpoint the records name (--checkpoint)",
        )


class CubeGenerator(TumorGeneratorBase):
    """What learned generators that work on a model-grid cube share: the soft edge they write,
    the cube they read, one-tumor rendering through ``render_batch``, and the check that a
    record was made by this checkpoint's files. Subclasses set ``checkpoint`` and provide
    :attr:`cube` and :attr:`files`."""

    checkpoint: str
    model: Any
    max_batch: int
    edge_width_mm: tuple[float, float]
    keep_scan_noise: bool
    version: str

    def _setup(
        self,
        checkpoint: object,
        model_class: Any,
        *,
        device: str,
        command: str,
        version: str,
        max_batch: int,
        edge_width_mm: tuple[float, float],
        keep_scan_noise: bool,
        weights_sha256: Mapping[str, str] | None,
    ) -> None:
        """Load ``checkpoint`` (a folder for ``model_class.from_pretrained`` or a loaded model),
        check and keep the options every cube generator has, set ``version`` (``version`` +
        the checkpoint's hash) and refuse files other than ``weights_sha256``."""
        from tumorsynth.models.device import pick_device

        if checkpoint is None:
            raise InputError(
                f"generator {self.name!r}",
                "needs a trained checkpoint, found none",
                fix=f"pass --checkpoint DIR (the model folder of `tumorsynth {command}`)",
            )
        if isinstance(checkpoint, model_class):
            self.model, self.checkpoint = checkpoint, ""
        else:
            self.checkpoint = str(Path(checkpoint))  # type: ignore[arg-type]
            self.model = model_class.from_pretrained(checkpoint, device=pick_device(device))
        if max_batch < 1:
            raise InputError("max_batch", f"expected >= 1, found {max_batch}")
        self.max_batch = int(max_batch)
        self.edge_width_mm = (float(edge_width_mm[0]), float(edge_width_mm[1]))
        self.keep_scan_noise = bool(keep_scan_noise)
        self.version = f"{version}+{self.model.sha256[:12]}"
        if weights_sha256 is not None:
            self._check_files(weights_sha256, None)

    @property
    def cube(self) -> tuple[int, tuple[float, float, float]]:
        """The model's cube: (edge in voxels, spacing in mm)."""
        raise NotImplementedError

    @property
    def files(self) -> Mapping[str, str]:
        """The sha256 of the checkpoint's files."""
        raise NotImplementedError

    def margin_mm(self, spec: Mapping[str, Any]) -> float:
        """What rendering writes beyond the tumor: its soft edge (exactly 0 beyond 4.5 std)."""
        return 4.5 * float(spec["edge_width_mm"])

    def context_mm(self, spec: Mapping[str, Any]) -> float:
        """What rendering reads beyond the tumor's box: enough to cover the model's cube."""
        size, spacing = self.cube
        return 0.5 * size * max(spacing) * float(spec["zoom"])

    def render(self, spec: Mapping[str, Any], inputs: RenderInput) -> np.ndarray:
        return self.render_batch([spec], [inputs])[0]

    def _check_files(self, recorded: object, made_from: object) -> None:
        """Refuse tumors made by other checkpoint files than this generator's, naming them."""
        where = f"checkpoint {self.checkpoint or '(in memory)'}"
        check_files(where, recorded, self.files, made_from)
