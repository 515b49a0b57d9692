"""Tests for the phantom's colon, esophagus and uterus, and for the older structures staying
exactly as they were before those were added (labels, and the image away from the new organs)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from tumorsynth.io.label_maps import PRESETS
from tumorsynth.io.nifti import Volume
from tumorsynth.phantom import _phantom_arrays, make_phantom

COLON, ESOPHAGUS, UTERUS = 10, 11, 12
OLDER_IDS = (1, 3, 5, 7, 8, 9)  # liver, pancreas, kidney, spleen, vessel, bone
DEFAULT = ((192, 160, 96), (2.0, 2.0, 2.5))
#: FOVs the rest of the test suite uses (tests/conftest.py, test_realism.py).
SMALL_FOVS = [((128, 108, 64), (2.5, 2.5, 3.0)), ((96, 80, 48), (2.0, 2.0, 2.5))]
#: sha256 of the label arrays restricted to OLDER_IDS, computed from the phantom as it was before
#: the colon, esophagus and uterus were added (FOV (128, 108, 64) at (2.5, 2.5, 3.0) mm).
OLDER_LABEL_SHA256 = {
    0: "13ef4aebe08ac2f3d52e15ab20221abfad3d274e92783aa14164719f3ec7a34b",
    1: "d22e72ba825d9f06dcea359fffa901cba3d5bafdc434392e0120bcb4bfb5015d",
    2: "07e22bcc80362f11fd7d4197be1c2d7f27d9e3f2f952dfcf3acc8c0891408a2d",
    3: "d5234c13d6f461cec7c6f9216ab91dc01bfd7ff444bf52d11133805a4d3c5bff",
}


@pytest.fixture(scope="module", params=(0, 3))
def phantom(request: pytest.FixtureRequest) -> tuple[Volume, Volume]:
    return make_phantom(request.param)


def _older(label: np.ndarray) -> np.ndarray:
    return np.where(np.isin(label, OLDER_IDS), label, 0).astype(np.uint8)


def _z_mm(label: Volume, mask: np.ndarray) -> np.ndarray:
    """World z (mm) of the mask's voxels."""
    return np.nonzero(mask)[2] * label.spacing_mm[2] + label.affine[2, 3]


# --------------------------------------------------------------------------- labels
def test_the_new_organs_are_labelled_with_the_phantom_presets_ids(
    phantom: tuple[Volume, Volume],
) -> None:
    _, label = phantom
    preset = PRESETS["phantom"]
    assert [preset.organ_ids(n) for n in ("colon", "esophagus", "uterus")] == [(10,), (11,), (12,)]
    counts = np.bincount(label.array.ravel(), minlength=13)
    ml = counts * np.prod(label.spacing_mm) / 1000.0
    assert 200 <= ml[COLON] <= 700, ml[COLON]  # the frame from cecum to descending colon
    assert 5 <= ml[ESOPHAGUS] <= 30, ml[ESOPHAGUS]  # only its distal 5-10 cm lie in the FOV
    assert 40 <= ml[UTERUS] <= 110, ml[UTERUS]  # about 8 x 5 x 4 cm


# --------------------------------------------------------------------------- colon
def test_colon_lumen_holds_air_and_fluid_pooled_posteriorly(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    a, colon = image.array, label.array == COLON
    inner = ndimage.binary_erosion(colon, iterations=2)  # the lumen, away from the wall
    air, fluid = a < -800, (a > -20) & (a < 40)
    assert air[colon].mean() > 0.3  # mostly air ...
    assert fluid[inner].sum() > 200  # ... with some fluid
    # dependent: in the supine patient fluid lies under air (lower y, RAS+ +y is anterior)
    both = inner[:, :-2] & inner[:, 2:]
    air_over_fluid = np.count_nonzero(both & fluid[:, :-2] & air[:, 2:])
    fluid_over_air = np.count_nonzero(both & air[:, :-2] & fluid[:, 2:])
    assert air_over_fluid >= 15 and fluid_over_air <= 0.05 * air_over_fluid


def test_colon_has_a_soft_tissue_wall_at_its_outer_boundary(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    a, colon = image.array, label.array == COLON
    depth_mm = ndimage.distance_transform_edt(colon, sampling=label.spacing_mm)
    outer = colon & (depth_mm <= 2.1)  # the mask's outermost voxels (the 3 mm wall)
    deep = colon & (depth_mm > 5.0)
    assert -80 <= np.median(a[outer]) <= 80  # soft tissue, partly averaged with fat and air
    assert np.mean(a[outer] < -800) < 0.05  # air never reaches the outer surface
    assert np.mean((a[deep] < -800) | ((a[deep] > -40) & (a[deep] < 60))) > 0.8  # air or fluid


def test_colon_frame_runs_on_both_flanks_and_across_the_front(
    phantom: tuple[Volume, Volume],
) -> None:
    _, label = phantom
    ijk = np.argwhere(label.array == COLON)
    xyz = ijk * label.spacing_mm + label.affine[:3, 3]
    assert (xyz[:, 0] > 80).sum() > 1000 and (xyz[:, 0] < -80).sum() > 1000  # right and left
    transverse = xyz[np.abs(xyz[:, 0]) < 40]
    assert transverse[:, 1].mean() > 40  # anterior, below the liver and stomach


# --------------------------------------------------------------------------- esophagus
def test_esophagus_is_a_thin_tube_in_the_upper_slices(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    esophagus = label.array == ESOPHAGUS
    _, n = ndimage.label(esophagus)
    assert n == 1
    inscribed_mm = ndimage.distance_transform_edt(esophagus, sampling=label.spacing_mm).max()
    assert 6.0 <= inscribed_mm <= 12.0
    z = _z_mm(label, esophagus)
    top = label.affine[2, 3] + (label.shape[2] - 1) * label.spacing_mm[2]
    assert z.max() == pytest.approx(top)  # it enters from above the FOV ...
    assert np.median(z) > 0.5 * top and z.max() - z.min() >= 25  # ... and runs down the top
    values = image.array[esophagus]
    # a muscular wall (neither fat nor lung nor enhanced blood), averaged at its edge with the
    # lung around it and the air in it
    assert 30 <= np.percentile(values, 90) <= 110 and values.max() < 200
    assert np.count_nonzero(values < -200) >= 2  # a little air in its lumen


def test_esophagus_runs_in_front_of_the_spine_into_the_stomach_side(
    phantom: tuple[Volume, Volume],
) -> None:
    _, label = phantom
    xyz = np.argwhere(label.array == ESOPHAGUS) * label.spacing_mm + label.affine[:3, 3]
    bone = np.argwhere(label.array == 9) * label.spacing_mm + label.affine[:3, 3]
    assert np.abs(xyz[:, 0]).max() < 60 and xyz[:, 1].min() > bone[:, 1].min() + 20
    low = xyz[xyz[:, 2] < np.percentile(xyz[:, 2], 15)]
    assert low[:, 0].mean() < -5  # its lower end veers to the patient's left (RAS+: -x)


# --------------------------------------------------------------------------- uterus
def test_uterus_is_solid_enhancing_and_whole_inside_the_fov(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    uterus = label.array == UTERUS
    _, n = ndimage.label(uterus)
    assert n == 1 and not ndimage.binary_fill_holes(uterus)[~uterus].any()  # solid
    assert 80 <= np.median(image.array[uterus]) <= 130
    for axis in range(3):  # does not touch a face of the FOV
        assert not np.take(uterus, [0, -1], axis=axis).any()
    z = _z_mm(label, uterus)
    assert z.max() < -30  # at the lowest slices
    xyz = np.argwhere(uterus) * label.spacing_mm
    lengths = 2 * np.sqrt(5 * np.linalg.eigvalsh(np.cov(xyz.T)))[::-1]  # ellipsoid axes (mm)
    assert 60 <= lengths[0] <= 100 and 30 <= lengths[2] <= lengths[1] <= 65, lengths


def test_uterus_has_a_hypodense_endometrial_stripe(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    uterus = label.array == UTERUS
    depth_mm = ndimage.distance_transform_edt(uterus, sampling=label.spacing_mm)
    centre = uterus & (depth_mm >= np.percentile(depth_mm[uterus], 90))
    myometrium = uterus & (depth_mm > 3.0) & (depth_mm < 6.0)
    assert np.median(image.array[centre]) < np.median(image.array[myometrium]) - 6


@pytest.mark.parametrize("shape, spacing", SMALL_FOVS)
def test_small_fovs_still_hold_a_whole_uterus(shape: tuple, spacing: tuple) -> None:
    image, label = make_phantom(1, shape=shape, spacing_mm=spacing)
    assert image.shape == tuple(shape)
    uterus = label.array == UTERUS
    assert uterus.sum() * np.prod(spacing) / 1000.0 > 10.0  # smaller where the FOV is short
    for axis in range(3):
        assert not np.take(uterus, [0, -1], axis=axis).any()
    assert {1, 3, 5, 7, 10, 12} <= set(np.unique(label.array).tolist())


# --------------------------------------------------------------------------- stability
@pytest.mark.parametrize("seed", sorted(OLDER_LABEL_SHA256))
def test_older_labels_are_those_of_the_phantom_before_the_new_organs(seed: int) -> None:
    _, label = make_phantom(seed, shape=(128, 108, 64), spacing_mm=(2.5, 2.5, 3.0))
    digest = hashlib.sha256(_older(label.array).tobytes()).hexdigest()
    assert digest == OLDER_LABEL_SHA256[seed], (
        "labels 1-9 changed: the new organs cut an older one, or the first random stream moved"
    )


@pytest.mark.parametrize("shape, spacing", [DEFAULT, *SMALL_FOVS])
def test_adding_the_organs_changes_nothing_else(shape: tuple, spacing: tuple) -> None:
    """With and without the added organs: the same older labels, and the same image (CT noise
    included) beyond the new organs' neighbourhood (blur footprint and fat planes)."""
    for seed in range(4):
        image, label = _phantom_arrays(seed, shape, spacing)
        old_image, old_label = _phantom_arrays(seed, shape, spacing, added_organs=False)
        assert not np.isin(old_label, (COLON, ESOPHAGUS, UTERUS)).any()
        np.testing.assert_array_equal(_older(label), _older(old_label))
        near = ndimage.binary_dilation(label >= COLON, np.ones((3, 3, 3), bool), iterations=4)
        assert near.mean() < 0.25  # most of the volume is compared
        np.testing.assert_array_equal(image[~near], old_image[~near])
        assert (image[label == UTERUS] != old_image[label == UTERUS]).mean() > 0.9
