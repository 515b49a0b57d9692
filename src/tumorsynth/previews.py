"""PNG previews of (synthetic) tumors: per-tumor montages and a whole-case overview.

Pillow and numpy only, so a preview costs milliseconds: every tile is cut from the volume as a
small 2-D window first (the volume is never converted to float), windowed to 8 bit, resampled to
its physical aspect ratio and outlined with the tumor (red) and organ (green) contours.

Display follows the radiological convention whatever the scan's voxel order: axial tiles show
patient anterior up and patient right on the image *left*; coronal tiles show superior up and
patient right on the image left. The voxel-to-world ``affine`` (nibabel, RAS+ world) says how the
voxel axes point; without one the voxel axes are taken to be RAS.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from nibabel.orientations import io_orientation
from PIL import Image, ImageDraw, ImageFont

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path
from tumorsynth.io.label_maps import label_mask

__all__ = [
    "AIR_HU",
    "ORGAN_ALPHA",
    "ORGAN_RGB",
    "TUMOR_RGB",
    "check_preview_grid",
    "draw_title",
    "mask_boundary",
    "preview_font",
    "render_crop_grid",
    "render_overview",
    "padded_plane",
    "render_tumor_montage",
    "save_png",
    "window_to_uint8",
]

Plane = Literal["axial", "coronal"]

#: World axes (0 R-L, 1 A-P, 2 S-I) shown as (tile rows, tile columns, fixed slice) per plane.
_PLANE_WORLD_AXES: dict[Plane, tuple[int, int, int]] = {"axial": (1, 0, 2), "coronal": (2, 0, 1)}
_MONTAGE_PLANES: tuple[Plane, ...] = ("axial", "coronal")
#: Padding outside the scan, tumor and organ contour colours (shared with previews_wall).
AIR_HU = -1000.0
TUMOR_RGB = np.array([255, 0, 0], dtype=np.uint8)
ORGAN_RGB = np.array([0, 255, 0], dtype=np.float32)
ORGAN_ALPHA = 0.6


def window_to_uint8(
    array: np.ndarray, level_hu: float = 40.0, width_hu: float = 400.0
) -> np.ndarray:
    """Map CT intensities (HU) to display gray values through a window.

    Parameters
    ----------
    array
        Intensities in HU, any shape and numeric dtype. Pass a slice, not a whole volume: the
        computation is done in float32 on a copy.
    level_hu, width_hu
        Window centre and width in HU (default W400 L40, the soft-tissue window):
        ``level - width/2`` maps to 0, ``level + width/2`` to 255.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of the same shape.

    Examples
    --------
    >>> window_to_uint8(np.array([-160, 40, 240])).tolist()
    [0, 128, 255]
    """
    if not width_hu > 0:
        raise InputError("width_hu", f"expected a window width > 0 HU, found {width_hu}")
    low = level_hu - width_hu / 2.0
    scaled = (np.asarray(array, dtype=np.float32) - np.float32(low)) * np.float32(255.0 / width_hu)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def render_tumor_montage(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: tuple[float, float, float],
    centers_vox: Sequence[tuple[float, float, float]],
    *,
    tumor_ids: Sequence[int],
    organ_ids: Sequence[int] = (),
    affine: np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    crop_mm: float | Sequence[float] = 100.0,
    level_hu: float = 40.0,
    width_hu: float = 400.0,
    max_rows: int = 8,
    tile_px: int = 256,
) -> Image.Image:
    """One row per tumor: an axial and a coronal tile through its centre, contours drawn on top.

    Parameters
    ----------
    image
        CT volume in HU, voxel axes (i, j, k); int16 stays int16 (only the tiles are converted).
    label
        Label map on the same grid.
    spacing_mm
        Voxel size (mm) along i, j, k, e.g. ``(0.78, 0.78, 1.6)``; tiles are resampled so that
        1 pixel covers the same number of mm along both tile axes.
    centers_vox
        Tumor centres in voxel coordinates (i, j, k); the slices go through the nearest voxel.
    tumor_ids, organ_ids
        Label ids outlined in red (1 px) and in dimmed green. The organ outline encloses organ and
        tumor ids together, so a tumor inside the organ does not cut a hole in it.
    affine
        Voxel-to-world (RAS+, mm) affine, e.g. ``Volume.affine``; it decides the display flips.
        ``None`` means the voxel axes are RAS (TotalSegmentator); IRCAD NIfTIs here are LPS.
    titles
        One text per row, drawn at the row's top left (Pillow's default font).
    crop_mm
        Side of the square field of view (mm), one value or one per row. Parts outside the
        volume are shown as air (-1000 HU).
    level_hu, width_hu
        Display window (HU).
    max_rows
        Centres beyond the first ``max_rows`` are not shown.
    tile_px
        Side of each square tile in pixels.

    Returns
    -------
    PIL.Image.Image
        RGB image of ``2 * tile_px`` by ``rows * tile_px`` pixels (columns: axial, coronal).

    Examples
    --------
    >>> ct = np.full((40, 40, 20), 60, dtype=np.int16)
    >>> lab = np.zeros(ct.shape, dtype=np.uint8); lab[15:25, 15:25, 8:12] = 2
    >>> render_tumor_montage(ct, lab, (1.0, 1.0, 2.5), [(20, 20, 10)], tumor_ids=[2],
    ...                      tile_px=64).size
    (128, 64)
    """
    check_preview_grid(image, label, spacing_mm)
    if max_rows < 1:
        raise InputError("max_rows", f"expected at least 1 row, found {max_rows}")
    centers = [tuple(float(c) for c in center) for center in centers_vox][:max_rows]
    if not centers:
        raise InputError("centers_vox", "expected at least one tumor centre, found none")
    crops = _per_row("crop_mm", crop_mm, len(centers_vox))[: len(centers)]
    if titles is not None and len(titles) != len(centers_vox):
        raise InputError(
            "titles", f"expected one title per centre ({len(centers_vox)}), found {len(titles)}"
        )
    view = _View(affine, spacing_mm, tumor_ids, organ_ids, level_hu, width_hu, tile_px)
    canvas = np.empty((len(centers) * tile_px, 2 * tile_px, 3), dtype=np.uint8)
    for row, (center, crop) in enumerate(zip(centers, crops)):
        for col, plane in enumerate(_MONTAGE_PLANES):
            tile = view.tile(image, label, plane, center, (crop, crop))
            canvas[row * tile_px : (row + 1) * tile_px, col * tile_px : (col + 1) * tile_px] = tile
    montage = Image.fromarray(canvas, mode="RGB")
    if titles is not None:
        for row, title in enumerate(titles[: len(centers)]):
            draw_title(montage, title, (4, row * tile_px + 3), tile_px)
    return montage


def render_overview(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: tuple[float, float, float],
    *,
    tumor_ids: Sequence[int],
    organ_ids: Sequence[int] = (),
    affine: np.ndarray | None = None,
    n_slices: int = 3,
    min_gap_mm: float = 10.0,
    level_hu: float = 40.0,
    width_hu: float = 400.0,
    tile_px: int = 384,
) -> Image.Image:
    """Whole axial slices where the tumors are largest, side by side, for a quick look at a case.

    Slices are picked greedily by tumor area, each at least ``min_gap_mm`` from those already
    picked (so three slices show different levels, not three neighbours of the same tumor), then
    shown superior to inferior. Without tumor voxels the slices with the largest organ area are
    shown; with neither, the middle slice.

    Parameters
    ----------
    image, label, spacing_mm, tumor_ids, organ_ids, affine, level_hu, width_hu
        As in :func:`render_tumor_montage`.
    n_slices
        Most slices to show (fewer when the scan has fewer far enough apart).
    min_gap_mm
        Least distance (mm) between two shown slices.
    tile_px
        Side of each square tile in pixels; the whole slice is fitted into it at its physical
        aspect ratio, padded with air.

    Returns
    -------
    PIL.Image.Image
        RGB image of ``n * tile_px`` by ``tile_px`` pixels, each tile titled with its slice
        index, its superior coordinate (mm, when ``affine`` is given) and its tumor area (cm^2).
    """
    check_preview_grid(image, label, spacing_mm)
    if n_slices < 1:
        raise InputError("n_slices", f"expected at least 1 slice, found {n_slices}")
    view = _View(affine, spacing_mm, tumor_ids, organ_ids, level_hu, width_hu, tile_px)
    row_axis, col_axis, slice_axis = view.voxel_axes("axial")
    other = tuple(a for a in range(3) if a != slice_axis)
    tumor_area = np.count_nonzero(label_mask(label, view.tumor_ids), axis=other)
    organ_area = (
        np.count_nonzero(label_mask(label, view.organ_ids), axis=other)
        if view.organ_ids
        else np.zeros_like(tumor_area)
    )
    slices = _pick_slices(tumor_area, organ_area, n_slices, min_gap_mm / spacing_mm[slice_axis])
    slices.sort(reverse=view.toward_ras[slice_axis])  # superior first
    center = [(n - 1) / 2.0 for n in image.shape]
    fov_mm = max(
        image.shape[row_axis] * spacing_mm[row_axis], image.shape[col_axis] * spacing_mm[col_axis]
    )
    pixel_cm2 = spacing_mm[row_axis] * spacing_mm[col_axis] / 100.0
    tiles, captions = [], []
    for index in slices:
        center[slice_axis] = float(index)
        tiles.append(view.tile(image, label, "axial", tuple(center), (fov_mm, fov_mm)))
        where = "" if affine is None else f"  S {_world_mm(affine, center)[2]:+.1f} mm"
        captions.append(f"slice {index}{where}  tumor {tumor_area[index] * pixel_cm2:.1f} cm2")
    overview = Image.fromarray(np.concatenate(tiles, axis=1), mode="RGB")
    for i, caption in enumerate(captions):
        draw_title(overview, caption, (i * tile_px + 4, 3), tile_px)
    return overview


def render_crop_grid(
    rows: Sequence[Sequence[np.ndarray]],
    *,
    column_titles: Sequence[str] = (),
    mask_rows: Sequence[np.ndarray | None] | None = None,
    level_hu: float = 40.0,
    width_hu: float = 400.0,
    tile_px: int = 160,
) -> Image.Image:
    """A grid of axial planes of RAS cubes (the learned model's crops), e.g. original beside
    reconstruction: ``rows[r][c]`` is a 2-D plane indexed ``[x, y]`` (RAS) in HU, shown with
    anterior up and patient right on the left. ``mask_rows[r]`` (a plane, optional) is outlined
    in red on every tile of its row; ``column_titles`` label the first row.

    Examples
    --------
    >>> plane = np.zeros((16, 16), dtype=np.float32)
    >>> render_crop_grid([[plane, plane]], tile_px=32).size
    (64, 32)
    """
    if not rows or not all(rows):
        raise InputError("rows", "expected at least one row of planes, found none")
    n_cols = max(len(r) for r in rows)
    canvas = np.zeros((len(rows) * tile_px, n_cols * tile_px, 3), dtype=np.uint8)
    for r, planes in enumerate(rows):
        mask = mask_rows[r] if mask_rows is not None else None
        edge = _display(mask_boundary(mask.astype(bool)), tile_px) if mask is not None else None
        for c, plane in enumerate(planes):
            tile = _display(window_to_uint8(plane, level_hu, width_hu), tile_px)
            rgb = np.repeat(tile[..., None], 3, axis=2)
            if edge is not None:
                rgb[edge.astype(bool)] = TUMOR_RGB
            canvas[r * tile_px : (r + 1) * tile_px, c * tile_px : (c + 1) * tile_px] = rgb
    img = Image.fromarray(canvas, mode="RGB")
    for c, title in enumerate(column_titles):
        draw_title(img, title, (c * tile_px + 3, 3), tile_px)
    return img


def _display(plane: np.ndarray, tile_px: int) -> np.ndarray:
    """RAS ``[x, y]`` plane -> radiological tile (anterior up, right on the left), nearest-resized."""
    shown = np.ascontiguousarray(plane[::-1, ::-1].T)
    if shown.dtype == bool:
        shown = shown.astype(np.uint8)
    return np.asarray(Image.fromarray(shown).resize((tile_px, tile_px), Image.Resampling.NEAREST))


def save_png(img: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``img`` as a PNG (zlib level 6: small and fast), atomically (temporary file, then rename).

    Returns the path written; its folder is created if needed.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=6)
    return path


class _View:
    """Display settings shared by all tiles of one figure: orientation, window, ids, tile size."""

    def __init__(
        self,
        affine: np.ndarray | None,
        spacing_mm: Sequence[float],
        tumor_ids: Sequence[int],
        organ_ids: Sequence[int],
        level_hu: float,
        width_hu: float,
        tile_px: int,
    ) -> None:
        if int(tile_px) < 8:
            raise InputError("tile_px", f"expected at least 8 pixels, found {tile_px}")
        window_to_uint8(np.zeros(1), level_hu, width_hu)  # validates the window once
        ornt = (
            io_orientation(np.asarray(affine, dtype=float))
            if affine is not None
            else np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
        )
        if not np.all(np.isfinite(ornt)):
            raise InputError("affine", f"cannot tell the voxel axes' directions from {affine}")
        #: voxel axis along world axis w (0 R-L, 1 A-P, 2 S-I)
        self.axis_of_world = [int(np.flatnonzero(ornt[:, 0] == w)[0]) for w in range(3)]
        #: per voxel axis: does a growing index move toward R, A or S?
        self.toward_ras = [bool(sign > 0) for sign in ornt[:, 1]]
        self.spacing_mm = tuple(float(s) for s in spacing_mm)
        self.tumor_ids = [int(i) for i in tumor_ids]
        self.organ_ids = [int(i) for i in organ_ids] + self.tumor_ids if organ_ids else []
        self.level_hu, self.width_hu, self.tile_px = level_hu, width_hu, int(tile_px)

    def voxel_axes(self, plane: Plane) -> tuple[int, int, int]:
        """Voxel axes shown as tile rows, tile columns, and the one the slice is fixed along."""
        rows, cols, fixed = _PLANE_WORLD_AXES[plane]
        return self.axis_of_world[rows], self.axis_of_world[cols], self.axis_of_world[fixed]

    def tile(
        self,
        image: np.ndarray,
        label: np.ndarray,
        plane: Plane,
        center: tuple[float, ...],
        fov_mm: tuple[float, float],
    ) -> np.ndarray:
        """RGB tile (tile_px, tile_px, 3) of ``plane`` through ``center``.

        ``fov_mm`` is the field of view (mm) along the tile's rows and columns.
        """
        row_axis, col_axis, fixed_axis = self.voxel_axes(plane)
        index = math.floor(center[fixed_axis] + 0.5)
        if not 0 <= index < image.shape[fixed_axis]:
            raise InputError(
                "centers_vox",
                f"centre {center} lies outside the volume of shape "
                f"{image.shape} along voxel axis {fixed_axis}",
            )
        # Window of whole voxels around the centre, 1 voxel wider than the field of view so the
        # resampling box below always lies inside it; (start, centre in PIL pixel units, half).
        spans = []
        for axis, fov in zip((row_axis, col_axis), fov_mm):
            half = fov / 2.0 / self.spacing_mm[axis]
            start = math.floor(center[axis] - half) - 1
            stop = math.ceil(center[axis] + half) + 2
            spans.append((start, stop, center[axis] - start + 0.5, half))
        gray = padded_plane(image, fixed_axis, index, row_axis, col_axis, spans, AIR_HU)
        labels = padded_plane(label, fixed_axis, index, row_axis, col_axis, spans, 0)
        box_center = []
        for dim, axis in enumerate((row_axis, col_axis)):
            pixel_center = spans[dim][2]
            if self.toward_ras[axis]:  # shown rows run toward P or I, columns toward L
                gray, labels = np.flip(gray, dim), np.flip(labels, dim)
                pixel_center = gray.shape[dim] - pixel_center
            box_center.append(pixel_center)
        (row_c, col_c), (row_h, col_h) = box_center, (spans[0][3], spans[1][3])
        box = (col_c - col_h, row_c - row_h, col_c + col_h, row_c + row_h)
        size = (self.tile_px, self.tile_px)

        def resample(plane: np.ndarray) -> np.ndarray:
            """Gray values or a mask (shown as 0/255) -> tile pixels, bilinear."""
            plane_u8 = plane.astype(np.uint8) * 255 if plane.dtype == bool else plane
            img = Image.fromarray(np.ascontiguousarray(plane_u8), mode="L")
            return np.asarray(img.resize(size, Image.Resampling.BILINEAR, box=box))

        shown = resample(window_to_uint8(gray, self.level_hu, self.width_hu))
        rgb = np.repeat(shown[:, :, None], 3, axis=2)
        if self.organ_ids:
            edge = mask_boundary(resample(label_mask(labels, self.organ_ids)) >= 128)
            blend = (1 - ORGAN_ALPHA) * rgb[edge] + ORGAN_ALPHA * ORGAN_RGB
            rgb[edge] = blend.astype(np.uint8)
        if self.tumor_ids:
            rgb[mask_boundary(resample(label_mask(labels, self.tumor_ids)) >= 128)] = TUMOR_RGB
        return rgb


def padded_plane(
    volume: np.ndarray,
    fixed_axis: int,
    index: int,
    row_axis: int,
    col_axis: int,
    spans: list[tuple[int, int, float, float]],
    fill: float,
) -> np.ndarray:
    """2-D window ``[row span, col span]`` of the slice ``index`` along ``fixed_axis``.

    Only the window is read (a view, then one small copy); parts outside the volume are ``fill``.
    """
    (r0, r1, _, _), (c0, c1, _, _) = spans
    rows = slice(max(r0, 0), min(r1, volume.shape[row_axis]))
    cols = slice(max(c0, 0), min(c1, volume.shape[col_axis]))
    key: list[int | slice] = [index, index, index]
    key[row_axis], key[col_axis] = rows, cols
    piece = volume[tuple(key)]
    if row_axis > col_axis:  # the slice keeps voxel-axis order; tiles want (rows, cols)
        piece = piece.T
    out = np.full((r1 - r0, c1 - c0), fill, dtype=volume.dtype)
    out[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = piece
    return out


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (1 px contour; the tile edge is no edge)."""
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _pick_slices(
    tumor_area: np.ndarray, organ_area: np.ndarray, n_slices: int, min_gap_vox: float
) -> list[int]:
    """Indices of up to ``n_slices`` slices, largest tumor (then organ) area first, spread apart."""
    score = tumor_area if tumor_area.any() else organ_area
    if not score.any():
        return [len(score) // 2]
    picked: list[int] = []
    for index in np.lexsort((-organ_area, -tumor_area)).tolist():
        if len(picked) == n_slices or score[index] == 0:
            break
        if all(abs(index - p) >= min_gap_vox for p in picked):
            picked.append(index)
    return picked


def _world_mm(affine: np.ndarray, voxel: Sequence[float]) -> np.ndarray:
    """World (RAS+, mm) coordinates of a voxel position."""
    return (np.asarray(affine, dtype=float) @ np.array([*voxel, 1.0]))[:3]


def _per_row(name: str, value: float | Sequence[float], n_rows: int) -> list[float]:
    if isinstance(value, (int, float, np.number)):
        values = [float(value)] * n_rows
    else:
        values = [float(v) for v in value]
    if len(values) != n_rows:
        raise InputError(
            name, f"expected one value or one per centre ({n_rows}), found {len(values)}"
        )
    if not all(v > 0 and math.isfinite(v) for v in values):
        raise InputError(name, f"expected sizes > 0 mm, found {values}")
    return values


def check_preview_grid(image: np.ndarray, label: np.ndarray, spacing_mm: Sequence[float]) -> None:
    if image.ndim != 3 or image.shape != label.shape:
        raise InputError(
            "label",
            f"expected a 3-D image and a label of the same shape, found "
            f"{image.shape} and {label.shape}",
        )
    if len(spacing_mm) != 3 or not all(float(s) > 0 for s in spacing_mm):
        raise InputError("spacing_mm", f"expected three voxel sizes > 0 mm, found {spacing_mm}")


@lru_cache(maxsize=4)
def preview_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def draw_title(img: Image.Image, text: str, xy: tuple[int, int], tile_px: int) -> None:
    """White text on a black box at ``xy``, sized to the tile (about 1/20 of its side)."""
    draw = ImageDraw.Draw(img)
    font = preview_font(max(10, tile_px // 20))
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
    draw.text(xy, text, fill=(255, 255, 255), font=font)
