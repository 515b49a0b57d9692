"""Previews of wall tumors (colon, esophagus): a view along the tube beside the axial slice.

A wall tumor thickens a segment of a tube, so an axial slice through its middle shows a ring or a
crescent at best, often a tube cut obliquely. :func:`render_tube_section` resamples the scan along
the tumor's centreline (``WallSpec.centreline_vox``, frozen in its record): a curved planar
reformat, the tube straightened, cut lengthwise through the centreline. The tube's long axis runs
across the tile, the wall above and below the lumen, the tumor's thickening and the narrowed lumen
in between, with the tumor (red) and organ (green) contours drawn as on the other tiles.

:func:`render_record_montage` is the per-case montage of records: the axial and coronal tiles of
:func:`~tumorsynth.previews.render_tumor_montage` per tumor (unchanged for solid tumors), a wall
tumor's view along the tube in place of its coronal tile.

Section plane. The cut contains the centreline and, at every point, the direction ``cos(a) n +
sin(a) b`` of the centreline's parallel-transport frame (:func:`~tumorsynth.shapes.wall.
centreline_frames`): for an eccentric tumor the centre of its arc, shown up, so the cut passes
through its thickest part and the opposite, normal wall is shown below; for an annular tumor the
patient's anterior (superior for a tube running antero-posteriorly), shown up. Along the tube the
end nearer the patient's right is shown on the left (radiological convention; for a segment running
mostly cranio-caudally, the superior end; antero-posteriorly, the anterior end), marked with its
letter. The centreline in a record covers the tumor and 8 mm beyond each end; the view extends it
straight along its end tangents to show some normal tube on either side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import OUTPUT_LABELS, label_mask
from tumorsynth.io.records import TumorRecord
from tumorsynth.previews import (
    AIR_HU,
    ORGAN_ALPHA,
    ORGAN_RGB,
    TUMOR_RGB,
    check_preview_grid,
    draw_title,
    mask_boundary,
    preview_font,
    render_tumor_montage,
    window_to_uint8,
)
from tumorsynth.shapes.wall import WallSpec, centreline_frames

__all__ = ["record_crop_mm", "record_walls", "render_record_montage", "render_tube_section"]

#: The view's half-width across the tube: this many times the tumor's reach from the centreline
#: (the tube's outer radius plus the outgrowth), so about 3 tube radii in all ...
_HALF_WIDTH_FACTOR = 1.5
#: ... and at least this much fat (mm) beyond the reach on either side.
_MIN_MARGIN_MM = 8.0
#: Normal tube shown beyond each end of the tumor: this fraction of its whole length, at least
#: ``_MIN_END_MM``.
_END_FRACTION = 0.4
_MIN_END_MM = 12.0
#: World directions (RAS+): right, anterior, superior; and the letters of both ends per axis.
_WORLD_AXES = np.eye(3)
_END_LETTERS = (("R", "L"), ("A", "P"), ("S", "I"))
_LETTER_RGB = (255, 255, 0)
_CAPTION = "along the tube"


def record_walls(records: Sequence[TumorRecord]) -> list[WallSpec | None]:
    """Each record's wall (``shape["wall"]``) as a :class:`WallSpec`, ``None`` for a solid tumor."""
    walls: list[WallSpec | None] = []
    for record in records:
        wall = record.shape.get("wall") if isinstance(record.shape, Mapping) else None
        walls.append(WallSpec.from_dict(wall) if wall else None)
    return walls


def record_crop_mm(record: TumorRecord, wall: WallSpec | None) -> float:
    """Side (mm) of a montage tile around a record's tumor: 3 diameters for a solid tumor, 2.5
    times its reach from the centreline for a wall tumor, at least 60 mm."""
    return max(60.0, 3.0 * record.diameter_mm if wall is None else 2.5 * wall.reach_mm())


def render_tube_section(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: tuple[float, float, float],
    wall: WallSpec,
    *,
    tumor_ids: Sequence[int],
    organ_ids: Sequence[int] = (),
    affine: np.ndarray | None = None,
    level_hu: float = 40.0,
    width_hu: float = 400.0,
    tile_px: int = 256,
) -> Image.Image:
    """The scan straightened along a wall tumor's centreline and cut lengthwise through it.

    Parameters
    ----------
    image, label
        CT volume (HU) and label map on the same grid, voxel axes (i, j, k); only the box around
        the centreline is read and converted to float.
    spacing_mm
        Voxel size (mm) along i, j, k; must be the spacing the wall was drawn at.
    wall
        The tumor's :class:`~tumorsynth.shapes.wall.WallSpec` (``record.shape["wall"]``).
    tumor_ids, organ_ids
        Label ids outlined in red and dimmed green, as in
        :func:`~tumorsynth.previews.render_tumor_montage`.
    affine
        Voxel-to-world (RAS+, mm) affine; it decides which way is up and which end is left.
        ``None``: the voxel axes are RAS.
    level_hu, width_hu
        Display window (HU).
    tile_px
        Side of the square tile (pixels). The section keeps its physical aspect ratio (1 pixel
        is the same number of mm along and across the tube), centred, padded with air.

    Returns
    -------
    PIL.Image.Image
        RGB tile of ``tile_px`` by ``tile_px`` pixels: the tube's long axis across, the cut's
        direction up (see the module's notes), the end letters at the bottom corners and
        "along the tube" between them.

    Examples
    --------
    >>> ct = np.full((40, 40, 60), -90, dtype=np.int16)
    >>> lab = np.zeros(ct.shape, dtype=np.uint8)
    >>> ii, jj = np.mgrid[:40, :40]
    >>> tube = (ii - 20) ** 2 + (jj - 20) ** 2 <= 64
    >>> ct[tube] = 40; lab[tube] = 7
    >>> wall = WallSpec(tuple((20.0, 20.0, float(k)) for k in range(20, 41)), (8.0,) * 21,
    ...                 length_mm=12.0, shoulder_mm=2.0, thickness_mm=4.0, outgrowth_mm=0.0,
    ...                 arc_deg=360.0, arc_center_deg=0.0, min_lumen_mm=2.0,
    ...                 spacing_mm=(1.0, 1.0, 1.0))
    >>> render_tube_section(ct, lab, (1.0, 1.0, 1.0), wall, tumor_ids=[8], organ_ids=[7],
    ...                     tile_px=64).size
    (64, 64)
    """
    check_preview_grid(image, label, spacing_mm)
    if int(tile_px) < 8:
        raise InputError("tile_px", f"expected at least 8 pixels, found {tile_px}")
    window_to_uint8(np.zeros(1), level_hu, width_hu)  # validates the window
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if not np.allclose(wall.spacing_mm, spacing, rtol=1e-5, atol=0.0):
        raise InputError(
            "spacing_mm",
            f"the wall tumor was drawn at spacing {list(wall.spacing_mm)} mm, the image has "
            f"{spacing.tolist()} mm",
            fix="preview the tumor on the scan it was drawn into",
        )
    section = _Section(wall, _voxel_mm_to_world(affine, spacing), int(tile_px))
    samples = section.sample_points_mm() / spacing  # (rows, cols, 3) voxel coordinates
    box, local = _local_box(samples, image.shape)
    if box is None:
        raise InputError(
            "wall.centreline_vox",
            f"the tumor's centreline {wall.middle_vox()} lies outside the volume of shape "
            f"{image.shape}",
            fix="preview the tumor on the scan it was drawn into",
        )
    gray = _resample(image[box].astype(np.float32), local, AIR_HU)
    rgb = np.repeat(window_to_uint8(gray, level_hu, width_hu)[:, :, None], 3, axis=2)
    tumor = [int(i) for i in tumor_ids]
    if organ_ids:
        organ = _resample(label_mask(label[box], [*map(int, organ_ids), *tumor]), local, 0.0)
        edge = mask_boundary(organ >= 0.5)
        rgb[edge] = ((1 - ORGAN_ALPHA) * rgb[edge] + ORGAN_ALPHA * ORGAN_RGB).astype(np.uint8)
    if tumor:
        rgb[mask_boundary(_resample(label_mask(label[box], tumor), local, 0.0) >= 0.5)] = TUMOR_RGB
    tile = Image.fromarray(section.place(rgb), mode="RGB")
    section.draw_end_letters(tile)
    return tile


def render_record_montage(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: Sequence[float],
    records: Sequence[TumorRecord],
    *,
    affine: np.ndarray | None = None,
    tile_px: int = 256,
) -> Image.Image:
    """One row per record: the axial tile through its centre, and beside it the coronal tile
    (solid tumors) or the view along the tube (wall tumors, :func:`render_tube_section`);
    W400 L40, contours of the output labels.

    For solid tumors the rows are those of :func:`~tumorsynth.previews.render_tumor_montage`.
    Rows are titled with organ, index, size class and, for a wall tumor, its length L and
    plateau thickness T (mm) and its arc (annular or the degrees it covers), else its equivalent
    diameter d; then the contrast to the organ (HU).
    """
    if not records:
        raise InputError("records", "expected at least one tumor record, found none")
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    walls = record_walls(records)
    titles = [_title(r, w) for r, w in zip(records, walls)]
    crops = [record_crop_mm(r, w) for r, w in zip(records, walls)]
    tumor_ids = sorted({r.tumor_label for r in records})
    organ_ids = sorted(
        {OUTPUT_LABELS.id_of(r.organ) for r in records if r.organ in OUTPUT_LABELS.organs}
    )
    montage = render_tumor_montage(
        image,
        label,
        spacing,
        [r.center_vox for r in records],
        tumor_ids=tumor_ids,
        organ_ids=organ_ids,
        affine=affine,
        crop_mm=crops,
        max_rows=len(records),
        tile_px=tile_px,
    )
    for row, wall in enumerate(walls):
        if wall is not None:  # the view along the tube in place of the coronal tile
            tile = render_tube_section(
                image,
                label,
                spacing,
                wall,
                tumor_ids=tumor_ids,
                organ_ids=organ_ids,
                affine=affine,
                tile_px=tile_px,
            )
            montage.paste(tile, (tile_px, row * tile_px))
    _draw_titles(montage, titles, tile_px)
    return montage


def _title(record: TumorRecord, wall: WallSpec | None) -> str:
    head = f"{record.organ} #{record.tumor_index} {record.size_class}"
    if wall is None:
        return f"{head}  d={record.diameter_mm:.1f} mm  {record.contrast_hu:+.0f} HU"
    kind = "annular" if wall.annular else f"arc {wall.arc_deg:.0f} deg"
    return (
        f"{head}  L={wall.length_mm:.0f} mm  T={wall.thickness_mm:.0f} mm  {kind}  "
        f"{record.contrast_hu:+.0f} HU"
    )


def _draw_titles(img: Image.Image, titles: Sequence[str], tile_px: int) -> None:
    for row, title in enumerate(titles):
        draw_title(img, title, (4, row * tile_px + 3), tile_px)


class _Section:
    """Geometry of one straightened section: sample positions (mm) and the tile's layout."""

    def __init__(self, wall: WallSpec, to_world: np.ndarray, tile_px: int) -> None:
        points = wall.points_mm()
        self.arc = wall.arc_mm()
        tangent, normal, binormal = centreline_frames(points)
        middle = int(np.argmin(np.abs(self.arc)))
        up_deg = wall.arc_center_deg if not wall.annular else None
        if up_deg is None:  # anterior up, or superior when the tube runs antero-posteriorly
            up_deg = _angle_of(to_world, tangent[middle], normal[middle], binormal[middle])
        angle = math.radians(up_deg)
        self.points, self.tangent = points, tangent
        self.up = math.cos(angle) * normal + math.sin(angle) * binormal
        # Left-to-right along the tube: from the end nearer the patient's right (dominant axis).
        chord = to_world @ (points[-1] - points[0])  # the chord's world direction
        self.world_axis = int(np.argmax(np.abs(chord)))
        # Toward R, A or S is +x, +y, +z in RAS; the left of the tile shows that end.
        self.reverse = bool(chord[self.world_axis] > 0)
        reach = wall.reach_mm()
        self.half_width_mm = max(_HALF_WIDTH_FACTOR * reach, reach + _MIN_MARGIN_MM)
        whole = 2.0 * wall.half_extent_mm
        self.half_length_mm = wall.half_extent_mm + max(_MIN_END_MM, _END_FRACTION * whole)
        self.tile_px = tile_px
        self.mm_per_px = 2.0 * max(self.half_length_mm, self.half_width_mm) / tile_px
        self.cols = max(1, round(2.0 * self.half_length_mm / self.mm_per_px))
        self.rows = max(1, round(2.0 * self.half_width_mm / self.mm_per_px))

    def sample_points_mm(self) -> np.ndarray:
        """Positions (mm, voxel axes) of the section's pixels, ``(rows, cols, 3)``: row 0 at
        the top (``+up``), column 0 at the left end."""
        s = (np.arange(self.cols) + 0.5 - self.cols / 2.0) * self.mm_per_px
        if self.reverse:
            s = s[::-1]
        v = (self.rows / 2.0 - 0.5 - np.arange(self.rows)) * self.mm_per_px
        base, up = self._along(s)
        return base[None, :, :] + v[:, None, None] * up[None, :, :]

    def _along(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centreline point and up direction at arc positions ``s`` (mm from the middle), the
        centreline extended straight beyond its ends."""
        arc = self.arc
        base = np.stack([np.interp(s, arc, self.points[:, a]) for a in range(3)], axis=1)
        up = np.stack([np.interp(s, arc, self.up[:, a]) for a in range(3)], axis=1)
        for end, beyond in ((0, s < arc[0]), (-1, s > arc[-1])):
            if beyond.any():
                base[beyond] = self.points[end] + np.outer(s[beyond] - arc[end], self.tangent[end])
                up[beyond] = self.up[end]
        up /= np.maximum(np.linalg.norm(up, axis=1, keepdims=True), 1e-12)
        return base, up

    def place(self, rgb: np.ndarray) -> np.ndarray:
        """The section's pixels centred on a black (air) square tile."""
        tile = np.zeros((self.tile_px, self.tile_px, 3), dtype=np.uint8)
        rows, cols = min(self.rows, self.tile_px), min(self.cols, self.tile_px)
        top, left = (self.tile_px - rows) // 2, (self.tile_px - cols) // 2
        tile[top : top + rows, left : left + cols] = rgb[:rows, :cols]
        return tile

    def draw_end_letters(self, tile: Image.Image) -> None:
        """The patient direction of each end (R/L, A/P or S/I) at the tile's bottom corners,
        "along the tube" between them."""
        first, second = _END_LETTERS[self.world_axis]
        font = preview_font(max(10, self.tile_px // 20))
        draw = ImageDraw.Draw(tile)
        bottom = self.tile_px - max(10, self.tile_px // 20) - 4
        draw.text((4, bottom), first, fill=_LETTER_RGB, font=font)
        right = draw.textbbox((0, 0), second, font=font)[2]
        draw.text((self.tile_px - right - 4, bottom), second, fill=_LETTER_RGB, font=font)
        middle = draw.textbbox((0, 0), _CAPTION, font=font)[2]
        draw.text(((self.tile_px - middle) // 2, bottom), _CAPTION, fill=_LETTER_RGB, font=font)


def _voxel_mm_to_world(affine: np.ndarray | None, spacing: np.ndarray) -> np.ndarray:
    """The 3x3 matrix taking a voxel-axis direction in mm to a world (RAS+) direction; its
    transpose goes back. ``None``: identity (the voxel axes are RAS)."""
    if affine is None:
        return np.eye(3)
    linear = np.asarray(affine, dtype=np.float64)[:3, :3] / spacing[None, :]
    if not np.all(np.isfinite(linear)):
        raise InputError("affine", f"expected a finite voxel-to-world affine, found {affine}")
    u, _, vt = np.linalg.svd(linear)  # nearest rotation/reflection (sheared affines)
    rotation: np.ndarray = u @ vt
    return rotation


def _angle_of(
    to_world: np.ndarray, tangent: np.ndarray, normal: np.ndarray, binormal: np.ndarray
) -> float:
    """Angle (deg, from the normal toward the binormal) of the patient's anterior projected
    across the tube, or of superior when anterior runs nearly along it."""
    for world in (_WORLD_AXES[1], _WORLD_AXES[2]):
        direction = to_world.T @ world  # world direction in voxel-axis mm
        across = direction - np.dot(direction, tangent) * tangent
        if np.linalg.norm(across) >= 0.5:
            break
    return math.degrees(math.atan2(float(np.dot(across, binormal)), float(np.dot(across, normal))))


def _local_box(
    samples: np.ndarray, shape: tuple[int, ...]
) -> tuple[tuple[slice, ...] | None, np.ndarray]:
    """The voxel box holding every sample (plus a voxel), clipped to the volume, and the
    samples' coordinates relative to it, ``(3, rows, cols)``; ``None`` when they miss it."""
    low = np.floor(samples.reshape(-1, 3).min(axis=0)).astype(int) - 1
    high = np.ceil(samples.reshape(-1, 3).max(axis=0)).astype(int) + 2
    low = np.maximum(low, 0)
    high = np.minimum(high, np.asarray(shape))
    if np.any(high <= low):
        return None, samples
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    local = np.moveaxis(samples - low, -1, 0)
    return box, local


def _resample(volume: np.ndarray, coords: np.ndarray, fill: float) -> np.ndarray:
    """Trilinear values of ``volume`` (float32) at ``coords`` (3, rows, cols); ``fill`` outside."""
    out: np.ndarray = ndi.map_coordinates(
        volume.astype(np.float32, copy=False), coords, order=1, mode="constant", cval=fill
    )
    return out
