"""Tests for tumorsynth.previews: windowing, tiles, contours, orientation, padding, saving."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tumorsynth.errors import InputError
from tumorsynth.previews import (
    _pick_slices,
    render_overview,
    render_tumor_montage,
    save_png,
    window_to_uint8,
)

SHAPE = (96, 80, 40)
SPACING = (0.8, 0.8, 2.0)
CENTER = (48.0, 40.0, 20.0)  # tumor centre, voxels
RADIUS_MM = 8.0
FAT_HU, ORGAN_HU, TUMOR_HU, MARKER_HU = -100, 100, 20, 1000
RAS_AFFINE = np.diag([*SPACING, 1.0])
LPS_AFFINE = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
RED = np.array([255, 0, 0])


def _phantom() -> tuple[np.ndarray, np.ndarray]:
    """RAS volume: fat, an ellipsoid organ (id 1) holding a sphere tumor (id 2), and markers:
    a bright block at low x (patient left), one at high y (anterior), one at high z (superior)."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    mm = [(axis - c) * s for axis, c, s in zip((i, j, k), CENTER, SPACING)]
    organ = (mm[0] / 30) ** 2 + (mm[1] / 25) ** 2 + (mm[2] / 30) ** 2 <= 1
    tumor = mm[0] ** 2 + mm[1] ** 2 + mm[2] ** 2 <= RADIUS_MM**2
    image = np.full(SHAPE, FAT_HU, dtype=np.int16)
    image[organ] = ORGAN_HU
    image[tumor] = TUMOR_HU
    image[3:8, 35:45, :] = MARKER_HU  # patient left (low x in RAS)
    image[43:53, 72:77, :] = MARKER_HU  # anterior (high y in RAS)
    image[43:53, :, 36:39] = MARKER_HU  # superior (high z)
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[organ] = 1
    label[tumor] = 2
    return image, label


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, np.ndarray]:
    return _phantom()


def _tiles(montage: Image.Image, tile_px: int, row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(montage)
    band = rgb[row * tile_px : (row + 1) * tile_px]
    return band[:, :tile_px], band[:, tile_px:]


def _red(tile: np.ndarray) -> np.ndarray:
    return np.all(tile == RED, axis=-1)


def _white(tile: np.ndarray) -> np.ndarray:
    return np.all(tile == 255, axis=-1)


def test_window_maps_w400_l40() -> None:
    out = window_to_uint8(np.array([-160, 240, 40, -1000, 3000], dtype=np.int16))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 255, 128, 0, 255]
    assert window_to_uint8(np.zeros((3, 4)), level_hu=0, width_hu=100).shape == (3, 4)
    with pytest.raises(InputError, match="width"):
        window_to_uint8(np.zeros(2), width_hu=0)


def test_montage_size_is_rows_by_columns_of_tiles(phantom) -> None:
    image, label = phantom
    montage = render_tumor_montage(
        image, label, SPACING, [CENTER] * 3, tumor_ids=[2], max_rows=2, tile_px=64
    )
    assert montage.mode == "RGB"
    assert montage.size == (2 * 64, 2 * 64)


def test_tumor_contour_is_red_at_the_tumor_and_absent_without_tumor(phantom) -> None:
    image, label = phantom
    tile_px, crop_mm = 128, 40.0
    montage = render_tumor_montage(
        image,
        label,
        SPACING,
        [CENTER, (48.0, 40.0, 3.0)],
        tumor_ids=[2],
        organ_ids=[1],
        crop_mm=crop_mm,
        tile_px=tile_px,
    )
    i, j, k = (int(c) for c in CENTER)
    extent_mm = [
        np.count_nonzero(line == 2) * s  # tumor's voxelized diameter along each axis
        for line, s in zip((label[:, j, k], label[i, :, k], label[i, j, :]), SPACING)
    ]
    axial, coronal = _tiles(montage, tile_px, row=0)
    for tile, (along_rows, along_cols) in ((axial, (1, 0)), (coronal, (2, 0))):
        rows, cols = np.nonzero(_red(tile))
        assert rows.size > 0
        height_mm = (np.ptp(rows) + 1) * crop_mm / tile_px
        width_mm = (np.ptp(cols) + 1) * crop_mm / tile_px
        assert height_mm == pytest.approx(extent_mm[along_rows], abs=1.0)  # physical aspect
        assert width_mm == pytest.approx(extent_mm[along_cols], abs=1.0)
        assert abs(rows.mean() - tile_px / 2) < 3 and abs(cols.mean() - tile_px / 2) < 3
    axial_without_tumor, _ = _tiles(montage, tile_px, row=1)
    assert not _red(axial_without_tumor).any()
    assert (np.asarray(montage)[..., 1] > np.asarray(montage)[..., 0] + 50).any()  # green organ


def test_ras_orientation_is_radiological(phantom) -> None:
    image, label = phantom
    tile_px = 128
    center = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2, CENTER[2])
    montage = render_tumor_montage(
        image, label, SPACING, [center], tumor_ids=[2], crop_mm=90.0, tile_px=tile_px
    )
    axial, coronal = _tiles(montage, tile_px)
    rows, cols = np.nonzero(_white(axial))
    left_marker = rows.size and cols[np.abs(rows - tile_px / 2) < 5]
    assert left_marker.size and left_marker.mean() > 0.75 * tile_px  # patient left -> image right
    top_marker = rows[np.abs(cols - tile_px / 2) < 5]
    assert top_marker.size and top_marker.mean() < 0.25 * tile_px  # anterior -> up
    rows, cols = np.nonzero(_white(coronal))
    superior = rows[np.abs(cols - tile_px / 2) < 5]
    assert superior.size and superior.mean() < 0.35 * tile_px  # superior -> up


def test_lps_and_permuted_inputs_look_the_same_as_ras(phantom) -> None:
    image, label = phantom
    same = {"tumor_ids": [2], "organ_ids": [1], "crop_mm": 70.0, "tile_px": 96}
    ras = render_tumor_montage(image, label, SPACING, [CENTER], affine=RAS_AFFINE, **same)
    lps_center = (SHAPE[0] - 1 - CENTER[0], SHAPE[1] - 1 - CENTER[1], CENTER[2])
    lps = render_tumor_montage(
        image[::-1, ::-1], label[::-1, ::-1], SPACING, [lps_center], affine=LPS_AFFINE, **same
    )
    np.testing.assert_array_equal(np.asarray(lps), np.asarray(ras))
    # Voxel axes stored as (k, j, i): the affine's columns say which is which.
    zyx_affine = RAS_AFFINE[:, [2, 1, 0, 3]]
    zyx = render_tumor_montage(
        image.transpose(2, 1, 0),
        label.transpose(2, 1, 0),
        SPACING[::-1],
        [CENTER[::-1]],
        affine=zyx_affine,
        **same,
    )
    np.testing.assert_array_equal(np.asarray(zyx), np.asarray(ras))


def test_crop_beyond_the_volume_is_padded_with_air(phantom) -> None:
    image, label = phantom
    tile_px, crop_mm = 128, 80.0
    montage = render_tumor_montage(
        image, label, SPACING, [(2.0, 40.0, 20.0)], tumor_ids=[2], crop_mm=crop_mm, tile_px=tile_px
    )
    axial, _ = _tiles(montage, tile_px)
    outside_mm = crop_mm / 2 - (2.0 + 0.5) * SPACING[0]  # beyond the volume's low-x face
    outside_px = int(outside_mm / crop_mm * tile_px)
    assert np.all(axial[:, -(outside_px - 2) :] == 0)  # low x is on the image right: air, black
    y_outside_px = int((crop_mm - SHAPE[1] * SPACING[1]) / 2 / crop_mm * tile_px)  # 8 mm each side
    assert np.all(axial[: y_outside_px - 2] == 0) and np.all(axial[-(y_outside_px - 2) :] == 0)
    inside = axial[y_outside_px + 2 : -(y_outside_px + 2), : tile_px - outside_px - 2]
    assert np.all(inside.max(axis=-1) > 0)  # tissue (or a contour), no air inside the volume


def test_inputs_are_not_modified(phantom) -> None:
    image, label = phantom
    image_before, label_before = image.copy(), label.copy()
    render_tumor_montage(image, label, SPACING, [CENTER], tumor_ids=[2], organ_ids=[1])
    render_overview(image, label, SPACING, tumor_ids=[2], organ_ids=[1], tile_px=64)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(label, label_before)


def test_titles_are_drawn(phantom) -> None:
    image, label = phantom
    kwargs = dict(tumor_ids=[2], organ_ids=[1], tile_px=128)
    plain = render_tumor_montage(image, label, SPACING, [CENTER, CENTER], **kwargs)
    titled = render_tumor_montage(
        image,
        label,
        SPACING,
        [CENTER, CENTER],
        titles=["liver #1  d=16.0 mm  20 HU", "liver #2"],
        **kwargs,
    )
    assert titled.size == plain.size
    difference = np.any(np.asarray(titled) != np.asarray(plain), axis=-1)
    assert difference[:20, :128].any() and difference[128:148, :128].any()
    with pytest.raises(InputError, match="one title per centre"):
        render_tumor_montage(image, label, SPACING, [CENTER], titles=["a", "b"], **kwargs)


def test_bad_arguments_are_refused(phantom) -> None:
    image, label = phantom
    with pytest.raises(InputError, match="same shape"):
        render_tumor_montage(image, label[:-1], SPACING, [CENTER], tumor_ids=[2])
    with pytest.raises(InputError, match="outside the volume"):
        render_tumor_montage(image, label, SPACING, [(10.0, 10.0, 45.0)], tumor_ids=[2])
    with pytest.raises(InputError, match="crop_mm"):
        render_tumor_montage(image, label, SPACING, [CENTER], tumor_ids=[2], crop_mm=[50, 60])
    with pytest.raises(InputError, match="at least one"):
        render_tumor_montage(image, label, SPACING, [], tumor_ids=[2])


def test_overview_shows_tumor_slices(phantom) -> None:
    image, label = phantom
    overview = render_overview(
        image,
        label,
        SPACING,
        tumor_ids=[2],
        organ_ids=[1],
        affine=LPS_AFFINE,
        n_slices=3,
        min_gap_mm=4.0,
        tile_px=96,
    )
    assert overview.size == (3 * 96, 96)
    tiles = np.split(np.asarray(overview), 3, axis=1)
    assert all(_red(tile).any() for tile in tiles)
    healthy = render_overview(
        image,
        np.where(label == 2, 1, label).astype(np.uint8),
        SPACING,
        tumor_ids=[2],
        organ_ids=[1],
        n_slices=2,
        tile_px=64,
    )
    assert healthy.size == (2 * 64, 64) and not _red(np.asarray(healthy)).any()


def test_pick_slices_prefers_large_tumor_area_and_keeps_a_gap() -> None:
    tumor = np.array([0, 5, 9, 8, 0, 0, 4, 0])
    organ = np.array([1, 1, 1, 1, 7, 1, 1, 1])
    assert _pick_slices(tumor, organ, 3, min_gap_vox=2) == [2, 6]  # 3 is too near 2, 0 has no tumor
    assert _pick_slices(np.zeros(8, int), organ, 1, min_gap_vox=2) == [4]
    assert _pick_slices(np.zeros(8, int), np.zeros(8, int), 3, min_gap_vox=2) == [4]


def test_save_png_is_atomic_and_small(tmp_path, phantom) -> None:
    image, label = phantom
    montage = render_tumor_montage(image, label, SPACING, [CENTER], tumor_ids=[2], tile_px=64)
    target = save_png(montage, tmp_path / "sub" / "preview.png")
    assert target == tmp_path / "sub" / "preview.png"
    assert [p.name for p in target.parent.iterdir()] == ["preview.png"]
    with Image.open(target) as reread:
        assert reread.format == "PNG" and reread.size == montage.size
        np.testing.assert_array_equal(np.asarray(reread.convert("RGB")), np.asarray(montage))
