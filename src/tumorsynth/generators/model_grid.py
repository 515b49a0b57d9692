"""What the learned generators share: a tumor's cube on the model's grid, read from the render
inputs, and the result blended back at native spacing.

A learned model works on cubes of ``crop_size`` voxels at its spacing (RAS axes), zoomed out when
the tumor and its soft edge would not fit. The cube is read from the tumor's context crop (the
tumor's own crop plus what the generator asked to read around it), its mask from the tumor's
rendered shape, and the model's output goes back onto the native crop only where the tumor's
soft mask is above 0, restricted to where tumor may lie.

Hollow organs (colon, esophagus) need two things more (:func:`cube_spec` records them in the
appearance spec; a spec without them renders as before):

- *Windows along the wall.* A wall tumor is long (up to 8-10 cm along a curved tube) and thin (a
  shell of a few mm to 2 cm). One cube holding it whole is zoomed out (large phantom colon tumors
  1.5-2.0x with 64^3 cubes at 1.5 mm or 96^3 at 1 mm), so the model sees the shell at a spacing
  it was not trained at, a few model voxels thick. When that zoom exceeds
  :data:`SINGLE_CUBE_MAX_ZOOM`, the model renders it in ``windows_vox`` instead: cubes centred
  on the centreline along the segment, zoomed only as far as the tube's cross-section needs,
  each holding a stretch of the tumor whole; where two overlap their results are cross-faded
  (each voxel weighted by how central it lies in each cube). Each window samples from its own
  seed (the first from the tumor's). In a wide colon the cross-section itself sets the zoom
  (the TotalSegmentator example's: up to 45 mm from the centreline, 1.5-2.5x), and one cube is
  kept.
- *The lumen becomes tumor.* Inside the tumor, voxels outside the organ's tissue range
  (``tissue_hu``: air, fluid, oral contrast, fat) are set to the host's HU before the model reads
  the cube (a model that changes the scan's own intensities would otherwise leave air in the
  tumor), and the tumor tissue written back is never darker than :data:`TISSUE_FLOOR_HU` (the
  lumen's air around the cube would otherwise darken the tumor's edge through the noise
  separation's low-pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tumorsynth._types import Vec3
from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.generators.noise import low_pass, scan_noise
from tumorsynth.generators.protocol import RenderInput, TumorGeneratorBase, TumorSite
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.shapes.ellipsoid import ShapeSpec, soft_mask

__all__ = [
    "TISSUE_FLOOR_HU",
    "CubeGenerator",
    "blend_back",
    "check_files",
    "cube_spec",
    "cube_zoom",
    "fill_lumen",
    "lumen_of",
    "read_cubes",
    "split_windows",
    "wall_windows",
    "window_weights",
    "window_seeds",
]

#: The tumor and its blend margin should fill at most this fraction of the cube's edge.
FIT_FRACTION = 0.7
#: A wall tumor's cross-section (its reach from the centreline plus the soft edge) fills at most
#: this fraction of a window's fit radius (``FIT_FRACTION`` x half the cube); the rest of the
#: radius holds a stretch of the segment.
WALL_CROSS_FRACTION = 0.6
#: Consecutive windows are at most this fraction of the stretch one window holds apart: the rest
#: overlaps, and is cross-faded.
WINDOW_STEP_FRACTION = 0.75
#: A tumor one cube holds at up to this zoom is rendered in one cube; a wall tumor that needs
#: more is rendered in windows when they need less zoom (large liver tumors get about 1.4 at the
#: default 64^3 cubes at 2 mm, DiffTumor's 96^3 at 1 mm).
SINGLE_CUBE_MAX_ZOOM = 1.5
#: Windows are used only when they need this many times less zoom than one cube.
WINDOW_MIN_GAIN = 1.2
#: At most this many windows per wall tumor (more would cost more than the zoom saves).
MAX_WINDOWS = 6
#: Tumor tissue in a hollow organ is never darker than this (HU): fat begins below -30 HU
#: (adipose window -190..-30 HU), water and mucin are near 0-20 HU.
TISSUE_FLOOR_HU = -30.0


def cube_zoom(site: TumorSite, edge_width_mm: float, crop_size: int, spacing_mm: Sequence[float]):
    """How much the model's grid is zoomed out so the tumor and its 4.5-std soft edge fill at
    most :data:`FIT_FRACTION` of the cube (1: the model's own spacing)."""
    return round(max(1.0, _fit_zoom(site.shape, edge_width_mm, crop_size, spacing_mm)), 4)


def _fit_zoom(
    shape: ShapeSpec, edge_width_mm: float, crop_size: int, spacing_mm: Sequence[float]
) -> float:
    """The zoom at which the tumor's box and soft edge fill :data:`FIT_FRACTION` of a cube."""
    needed_mm = 2.0 * (float(np.max(shape.half_extents_mm())) + 4.5 * edge_width_mm)
    return needed_mm / (FIT_FRACTION * crop_size * min(spacing_mm))


def wall_windows(
    shape: ShapeSpec, edge_width_mm: float, crop_size: int, spacing_mm: Sequence[float]
) -> tuple[float, tuple[Vec3, ...]] | None:
    """Zoom and window centres (voxel offsets from ``shape.center_vox``) for a wall tumor that
    one cube holds only zoomed out beyond :data:`SINGLE_CUBE_MAX_ZOOM`, when windows along the
    segment need :data:`WINDOW_MIN_GAIN` times less zoom (as much as the tube's cross-section
    needs) and there are at most :data:`MAX_WINDOWS`; None otherwise (one cube,
    :func:`cube_zoom`), and for any other tumor.

    Each window holds whole the stretch of the segment within ``cover / 2`` of its centre
    (arc length), where ``cover = 2 (R_fit - cross)``: every voxel of that stretch lies within
    ``cover / 2 + cross`` of the centre, inside the fit sphere ``R_fit`` of the cube (a chord is
    never longer than its arc). Centres run along the centreline, evenly spaced, so the first and
    last windows hold the ends (soft edge included) and neighbours overlap.
    """
    wall = shape.wall
    if wall is None:
        return None
    edge = 4.5 * edge_width_mm
    single = _fit_zoom(shape, edge_width_mm, crop_size, spacing_mm)
    cross = wall.reach_mm() + edge
    fit0 = 0.5 * FIT_FRACTION * crop_size * min(spacing_mm)
    zoom = round(max(1.0, cross / (WALL_CROSS_FRACTION * fit0)), 4)
    cover = 2.0 * (fit0 * zoom - cross)
    extent = 2.0 * (wall.half_extent_mm + edge + 1.0)  # 1 mm: the arc's refinement at the ends
    if single <= SINGLE_CUBE_MAX_ZOOM or zoom * WINDOW_MIN_GAIN > single or extent <= cover:
        return None
    count = 1 + math.ceil((extent - cover) / (WINDOW_STEP_FRACTION * cover) - 1e-9)
    if count > MAX_WINDOWS:
        return None
    reach = min(0.5 * (extent - cover), wall.half_extent_mm)
    arcs = np.linspace(-reach, reach, count)
    arc = wall.arc_mm()
    points = np.asarray(wall.centreline_vox, dtype=np.float64)
    centre = np.asarray(shape.center_vox, dtype=np.float64)
    offsets = [
        tuple(
            round(float(np.interp(a, arc, points[:, axis]) - centre[axis]), 4) for axis in range(3)
        )
        for a in arcs
    ]
    return zoom, tuple(offsets)  # type: ignore[arg-type]


def cube_spec(
    site: TumorSite, edge_width_mm: float, crop_size: int, spacing_mm: Sequence[float]
) -> dict[str, Any]:
    """What a cube generator records about its cubes: ``zoom``; for a wall tumor that one cube
    does not hold, ``windows_vox`` (:func:`wall_windows`); for a hollow organ, ``tissue_hu``
    (its tissue range: the rest of the tumor is lumen, filled before the model reads it)."""
    windows = wall_windows(site.shape, edge_width_mm, crop_size, spacing_mm)
    spec: dict[str, Any] = {
        "zoom": cube_zoom(site, edge_width_mm, crop_size, spacing_mm)
        if windows is None
        else windows[0]
    }
    if windows is not None:
        spec["windows_vox"] = [list(w) for w in windows[1]]
    if site.profile.tissue_hu is not None:
        spec["tissue_hu"] = [float(v) for v in site.profile.tissue_hu]
    return spec


def window_seeds(spec: Mapping[str, Any]) -> list[int]:
    """The noise seed of each of the tumor's cubes: the spec's own for the first, one derived
    from it and the window's index for the others."""
    seed = int(spec["noise_seed"])
    count = len(spec.get("windows_vox") or [None])
    derived = [
        int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0]) >> 1
        for k in range(1, count)
    ]
    return [seed, *derived]


def lumen_of(image: np.ndarray, tumor: np.ndarray, tissue_hu: Sequence[float]) -> np.ndarray:
    """The voxels of ``tumor`` whose HU lie outside ``tissue_hu``: the lumen (air, fluid, oral
    contrast) and the fat a hollow organ's tumor takes over."""
    lo, hi = float(tissue_hu[0]), float(tissue_hu[1])
    return tumor & ((image < lo) | (image > hi))


def fill_lumen(
    image: np.ndarray, tumor: np.ndarray, tissue_hu: Sequence[float], host_hu: float
) -> np.ndarray:
    """``image`` with the lumen of ``tumor`` (:func:`lumen_of`) set to ``host_hu`` (a copy
    when there is any lumen; ``image`` itself when there is none).

    Examples
    --------
    >>> image = np.array([-1000.0, 40.0, 5.0, 600.0], dtype=np.float32)
    >>> fill_lumen(image, np.array([True, True, False, True]), (20.0, 250.0), 35.0).tolist()
    [35.0, 40.0, 5.0, 35.0]
    """
    lumen = lumen_of(image, tumor, tissue_hu)
    if not lumen.any():
        return image
    out = image.copy()
    out[lumen] = np.float32(host_hu)
    return out


def read_cubes(
    specs: Sequence[Mapping[str, Any]],
    inputs: Sequence[RenderInput],
    spacing_mm: Sequence[float],
    crop_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, list[list[CropGrid]]]:
    """Per tumor, its cubes (one, or one per window) of HU from the context crop and of its mask
    (0/1), all concatenated (B, 1, N, N, N) on ``device``, and per tumor the grids on its own crop
    that results go back through. Each spec's ``zoom`` scales the model spacing; with
    ``tissue_hu`` the lumen inside the tumor is filled with its host's HU first."""
    crops, masks, grids = [], [], []
    for spec, inp in zip(specs, inputs, strict=True):
        orientation = orientation_of(inp.affine)
        spacing = tuple(s * float(spec["zoom"]) for s in spacing_mm)
        context = inp.context
        if spec.get("tissue_hu") is not None:
            inner = tuple(slice(o, o + n) for o, n in zip(inp.context_offset, inp.tumor_mask.shape))
            crop = context[inner]
            filled = fill_lumen(
                crop, inp.tumor_mask, spec["tissue_hu"], float(spec["parenchyma_hu"])
            )
            if filled is not crop:  # never written in place: the context may be the image
                context = context.copy()
                context[inner] = filled
        volume = torch.from_numpy(np.ascontiguousarray(context)).to(device)
        tumor = torch.from_numpy(inp.tumor_mask.astype(np.float32)).to(device)
        middle = np.asarray(inp.shape.center_vox, float) - np.asarray(inp.shape.box.origin)
        own = []
        for offset in spec.get("windows_vox") or [(0.0, 0.0, 0.0)]:
            center = middle + np.asarray(offset, dtype=float)
            grid = CropGrid(tuple(center), inp.spacing_mm, orientation, spacing, crop_size)  # type: ignore[arg-type]
            in_context = CropGrid(
                tuple(center + np.asarray(inp.context_offset)),
                inp.spacing_mm,
                orientation,
                spacing,  # type: ignore[arg-type]
                crop_size,
            )
            crops.append(in_context.read(volume))
            masks.append((grid.read(tumor) > 0.5).float())
            own.append(grid)
        grids.append(own)
    return torch.cat(crops), torch.cat(masks), grids


def split_windows(
    cubes: torch.Tensor, grids: Sequence[Sequence[CropGrid]]
) -> list[list[torch.Tensor]]:
    """The cubes of a batch (B, 1, N, N, N), in :func:`read_cubes`' order, per tumor."""
    out, start = [], 0
    for own in grids:
        out.append([cubes[start + k] for k in range(len(own))])
        start += len(own)
    return out


def blend_back(
    spec: Mapping[str, Any],
    inp: RenderInput,
    grids: CropGrid | Sequence[CropGrid],
    cubes: torch.Tensor | Sequence[torch.Tensor],
) -> np.ndarray:
    """``background + w * (synthetic - background)`` on the native crop, only where the soft
    mask ``w`` (edge ``spec["edge_width_mm"]``, within ``inp.allowed``) is above 0.

    The synthetic HU are the ``cubes`` written back through their ``grids`` (one cube, or one
    per window, cross-faded: :func:`window_weights`); their deviation from the parenchyma
    (``spec["parenchyma_hu"]``) is scaled by ``spec["contrast_scale"]`` (1 when absent); with
    ``spec["tissue_hu"]`` (a hollow organ) they are at least :data:`TISSUE_FLOOR_HU`; and
    with ``spec["scan_noise"]`` their content finer than 2 mm is replaced by the scan's own
    noise (seeded by ``spec["noise_seed"]``).
    """
    if isinstance(grids, CropGrid):
        grids, cubes = [grids], [cubes]  # type: ignore[list-item]
    weight = soft_mask(inp.shape.distance_mm, float(spec["edge_width_mm"]))
    weight *= inp.allowed
    new = inp.image.astype(np.float32, copy=True)
    found = Box.of_mask(weight > 0)
    if found is None:
        return new
    box = found.slices
    w = weight[box]
    background = new[box]
    synthetic = _written_back(list(grids), list(cubes), found, background)
    host = float(spec["parenchyma_hu"])
    synthetic = host + float(spec.get("contrast_scale", 1.0)) * (synthetic - host)
    if spec.get("tissue_hu") is not None:
        np.maximum(synthetic, np.float32(TISSUE_FLOOR_HU), out=synthetic)
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


def window_weights(grid: CropGrid, origin: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """How central each scan voxel of the box ``origin``/``shape`` lies in ``grid``'s cube: the
    product over the cube's axes of ``1 - |offset| / half`` (1 at the centre, 0 at the faces and
    beyond), float32."""
    points = grid.model_points(origin, shape)
    half = max((grid.size - 1) / 2.0, 0.5)
    tent = np.clip(1.0 - np.abs(points - half) / half, 0.0, 1.0)
    return np.prod(tent, axis=-1).astype(np.float32)


def _written_back(
    grids: list[CropGrid], cubes: list[torch.Tensor], found: Box, background: np.ndarray
) -> np.ndarray:
    """The cubes' HU on the box ``found``: one cube as it is; several cross-faded by
    :func:`window_weights` (a voxel no cube covers keeps ``background``)."""
    if len(grids) == 1:
        return grids[0].write_back(cubes[0], found.origin, found.shape).float().cpu().numpy()
    total = np.zeros(found.shape, dtype=np.float32)
    weights = np.zeros(found.shape, dtype=np.float32)
    for grid, cube in zip(grids, cubes, strict=True):
        weight = window_weights(grid, found.origin, found.shape)
        values = grid.write_back(cube, found.origin, found.shape).float().cpu().numpy()
        total += weight * values
        weights += weight
    covered = weights > 0
    out = background.astype(np.float32, copy=True)
    out[covered] = total[covered] / weights[covered]
    return out


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
