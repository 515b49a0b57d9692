"""Tests for tumorsynth.previews_wall: the view along a wall tumor's tube and the record montage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import OUTPUT_LABELS
from tumorsynth.pipelines import TumorRequest, synthesize_case
from tumorsynth.pipelines.batch import write_preview
from tumorsynth.previews import render_tumor_montage
from tumorsynth.previews_wall import record_walls, render_record_montage, render_tube_section
from tumorsynth.shapes.wall import WallSpec, wall_box, wall_field

SPACING = (1.0, 1.0, 1.5)
SHAPE = (64, 64, 80)
OUTER_MM, WALL_MM = 12.0, 3.0
LENGTH_MM, SHOULDER_MM, THICKNESS_MM = 30.0, 4.0, 8.0
ORGAN, TUMOR = 7, 8
RED = np.array([255, 0, 0])
TILE = 128


def _red(tile: np.ndarray) -> np.ndarray:
    return np.all(tile == RED, axis=-1)


def _tube(axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fat, a tube along voxel ``axis`` through the middle (3 mm wall at 40 HU, air lumen),
    labelled ORGAN; returns image, label and the distance (mm) from the tube's axis."""
    grids = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in SHAPE), indexing="ij")
    across = [a for a in range(3) if a != axis]
    rho = np.sqrt(
        sum(((grids[a] - (SHAPE[a] - 1) / 2) * SPACING[a]) ** 2 for a in across)  # type: ignore[misc]
    )
    image = np.full(SHAPE, -100, dtype=np.int16)
    image[rho <= OUTER_MM] = 40
    image[rho <= OUTER_MM - WALL_MM] = -1000
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[rho <= OUTER_MM] = ORGAN
    return image, label, rho


def _wall(axis: int, arc_deg: float, arc_center_deg: float = 0.0) -> WallSpec:
    """A wall tumor on the tube of :func:`_tube`, centred along it, points 1 mm apart."""
    n = 2 * int(0.5 * (LENGTH_MM + SHOULDER_MM) + 8) + 1
    points = []
    for t in np.arange(n) - n // 2:
        p = [(s - 1) / 2 for s in SHAPE]
        p[axis] += t / SPACING[axis]
        points.append((float(p[0]), float(p[1]), float(p[2])))
    return WallSpec(
        tuple(points),
        (OUTER_MM,) * n,
        length_mm=LENGTH_MM,
        shoulder_mm=SHOULDER_MM,
        thickness_mm=THICKNESS_MM,
        outgrowth_mm=0.0,
        arc_deg=arc_deg,
        arc_center_deg=arc_center_deg,
        min_lumen_mm=2.0,
        spacing_mm=SPACING,
    )


def _with_tumor(axis: int, wall: WallSpec) -> tuple[np.ndarray, np.ndarray]:
    """The tube of :func:`_tube` with ``wall`` drawn in: tumor voxels at 70 HU, label TUMOR."""
    image, label, _ = _tube(axis)
    box = wall_box(wall, SPACING, SHAPE, margin_mm=2.0)
    distance, _ = wall_field(wall, SPACING, box)
    tumor = np.zeros(SHAPE, dtype=bool)
    tumor[box.slices] = distance < 0
    tumor &= label == ORGAN
    image[tumor] = 70
    label[tumor] = TUMOR
    return image, label


def _section(image, label, wall, affine=None) -> np.ndarray:
    tile = render_tube_section(
        image,
        label,
        SPACING,
        wall,
        tumor_ids=[TUMOR],
        organ_ids=[ORGAN],
        affine=affine,
        tile_px=TILE,
    )
    assert tile.size == (TILE, TILE) and tile.mode == "RGB"
    return np.asarray(tile)


def _organ_rows(tile: np.ndarray) -> tuple[int, int]:
    """Top and bottom rows of the tube's outer contour (green-tinted pixels) near the view's
    left end, beyond the tumor: the tube is 2 * OUTER_MM across, which gives the tile's scale."""
    band = tile[:, 3:8].astype(int)
    greenish = ((band[..., 1] - band[..., 0]) > 60).any(axis=1)
    rows = np.flatnonzero(greenish)
    return int(rows.min()), int(rows.max())


def test_eccentric_tumor_shows_on_the_upper_side_over_its_length() -> None:
    wall = _wall(axis=2, arc_deg=120.0)
    image, label = _with_tumor(2, wall)
    tile = _section(image, label, wall)
    red = _red(tile)
    assert red.sum() > 50  # the tumor is visible along the tube
    top, bottom = _organ_rows(tile)
    middle = (top + bottom) / 2
    mm_per_px = 2 * OUTER_MM / (bottom - top)
    rows, cols = np.nonzero(red)
    assert rows.max() < middle  # the arc's centre is shown up, the opposite wall is normal
    # The contour hugs the outer wall over the whole thickened extent (length + shoulder).
    extent_mm = (cols.max() - cols.min() + 1) * mm_per_px
    assert abs(extent_mm - (LENGTH_MM + SHOULDER_MM)) <= 3.0, extent_mm
    # Thickest part: the lumen narrows from OUTER - WALL to OUTER - THICKNESS mm.
    inner_mm = (middle - rows.max()) * mm_per_px
    assert abs(inner_mm - (OUTER_MM - THICKNESS_MM)) <= 1.5 * mm_per_px + 1.0, inner_mm
    # The tumor lies in the middle of the view, normal tube either side.
    assert cols.min() > 0.1 * TILE and cols.max() < 0.9 * TILE


def test_annular_tumor_shows_on_both_sides() -> None:
    wall = _wall(axis=2, arc_deg=360.0)
    image, label = _with_tumor(2, wall)
    tile = _section(image, label, wall)
    top, bottom = _organ_rows(tile)
    rows = np.flatnonzero(_red(tile).any(axis=1))
    middle = (top + bottom) / 2
    assert (rows < middle).any() and (rows > middle).any()


def test_annular_view_puts_anterior_up_and_the_right_end_left() -> None:
    wall = _wall(axis=0, arc_deg=360.0)  # a tube along i: patient right-left in RAS
    image, label = _with_tumor(0, wall)
    image[:, 50:54, 30:50] = 1000  # anterior of the tube (high j), within the view
    image[56:60, 28:36, 38:42] = 1000  # in the lumen near the right end (high i)
    ras = _section(image, label, wall)
    white = np.all(ras == 255, axis=-1)
    rows, cols = np.nonzero(white)
    assert rows.mean() < TILE / 2  # anterior up
    lumen_marker = white[:, : TILE // 2].sum(), white[:, TILE // 2 :].sum()
    # The anterior marker spans the view; the lumen one sits on the right end: left in RAS ...
    flipped = _section(image, label, wall, affine=np.diag([-1.0, 1.0, 1.5, 1.0]))
    white_lps = np.all(flipped == 255, axis=-1)
    lumen_lps = white_lps[:, : TILE // 2].sum(), white_lps[:, TILE // 2 :].sum()
    # ... and on the right when the i axis points to the patient's left.
    assert lumen_marker[0] > lumen_marker[1] and lumen_lps[1] > lumen_lps[0]


def test_rotated_affine_orients_by_the_patient_not_the_voxel_axes() -> None:
    """Voxel i runs posterior, j superior, k right (a cyclic permutation with a flip): a tube
    along i runs antero-posteriorly, so the anterior (low i) end is on the left, and superior
    (high j) is up, anterior lying along the tube."""
    wall = _wall(axis=0, arc_deg=360.0)
    image, label = _with_tumor(0, wall)
    image[4:8, 28:36, 38:42] = 1000  # in the lumen near the anterior end (low i)
    image[:, 50:54, 30:50] = 1000  # superior of the tube (high j)
    linear = np.array([[0.0, 0.0, 1.5], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # columns: i, j, k
    affine = np.eye(4)
    affine[:3, :3] = linear
    white = np.all(_section(image, label, wall, affine=affine) == 255, axis=-1)
    rows, _ = np.nonzero(white)
    assert rows.mean() < TILE / 2  # the superior marker is up
    lumen = white[TILE // 3 : 2 * TILE // 3]  # the band of the lumen
    assert lumen[:, : TILE // 2].sum() > 0 and lumen[:, TILE // 2 :].sum() == 0


def test_bad_input_is_named() -> None:
    wall = _wall(axis=2, arc_deg=120.0)
    image, label = _with_tumor(2, wall)
    with pytest.raises(InputError, match="spacing"):
        render_tube_section(image, label, (1.0, 1.0, 1.0), wall, tumor_ids=[TUMOR])
    far = replace(wall, centreline_vox=tuple((p[0] + 500, p[1], p[2]) for p in wall.centreline_vox))
    with pytest.raises(InputError, match="outside the volume"):
        render_tube_section(image, label, SPACING, far, tumor_ids=[TUMOR])
    with pytest.raises(InputError, match="same shape"):
        render_tube_section(image, label[:-1], SPACING, wall, tumor_ids=[TUMOR])


# --------------------------------------------------------------------------- record montages
@pytest.fixture(scope="module")
def colon_case(phantom):
    """The small phantom with a colon wall tumor and a liver tumor (output labels)."""
    ct, seg = phantom
    out = synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map="phantom",
        requests=[TumorRequest("colon", 1, "medium"), TumorRequest("liver", 1, "small")],
        rng=3,
        affine=ct.affine,
    )
    return ct, out


def test_record_montage_shows_the_wall_tumor_along_its_tube(colon_case) -> None:
    ct, out = colon_case
    walls = record_walls(out.records)
    organs = [r.organ for r in out.records]
    assert sorted(organs) == ["colon", "liver"]
    assert [w is not None for w in walls] == [o == "colon" for o in organs]
    montage = render_record_montage(
        out.image, out.label, ct.spacing_mm, out.records, affine=ct.affine, tile_px=TILE
    )
    assert montage.size == (2 * TILE, 2 * TILE)  # two columns, whatever the tumors
    rgb = np.asarray(montage)
    row = organs.index("colon")
    beside = rgb[row * TILE : (row + 1) * TILE, TILE:]
    wall = walls[row]
    assert wall is not None
    along = np.asarray(
        render_tube_section(
            out.image,
            out.label,
            ct.spacing_mm,
            wall,
            tumor_ids=[OUTPUT_LABELS.id_of("colon_tumor"), OUTPUT_LABELS.id_of("liver_tumor")],
            organ_ids=[OUTPUT_LABELS.id_of("colon"), OUTPUT_LABELS.id_of("liver")],
            affine=ct.affine,
            tile_px=TILE,
        )
    )
    below_title = slice(TILE // 5, TILE)
    assert np.array_equal(beside[below_title], along[below_title])
    assert _red(along).sum() > 30  # the tumor is visible along the tube
    coronal = np.asarray(
        render_tumor_montage(
            out.image,
            out.label,
            ct.spacing_mm,
            [out.records[row].center_vox],
            tumor_ids=[2, 8],
            affine=ct.affine,
            tile_px=TILE,
        )
    )[:, TILE:]
    assert not np.array_equal(beside[below_title], coronal[below_title])


def test_solid_rows_are_the_batch_montage(colon_case, tmp_path) -> None:
    ct, out = colon_case
    solid = [r for r in out.records if r.organ == "liver"]
    mine = render_record_montage(out.image, out.label, ct.spacing_mm, solid, affine=ct.affine)
    path = write_preview(
        tmp_path / "batch.png", out.image, out.label, ct.spacing_mm, ct.affine, solid
    )
    with Image.open(path) as batch:
        assert np.array_equal(np.asarray(mine), np.asarray(batch.convert("RGB")))
    with pytest.raises(InputError, match="at least one"):
        render_record_montage(out.image, out.label, ct.spacing_mm, [])
