"""Tests for tumorsynth.phantom: determinism, grid and header, label ids, anatomy, HU, noise."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, stats

from tumorsynth.io.label_maps import PRESETS
from tumorsynth.io.nifti import Volume, load_volume, save_volume
from tumorsynth.phantom import PHANTOM_DESCRIPTION, make_phantom

SEEDS = (0, 7)
PHANTOM = PRESETS["phantom"]
LIVER, PANCREAS, KIDNEY, SPLEEN, VESSEL, BONE, COLON, ESOPHAGUS, UTERUS = (
    PHANTOM.organ_ids(name)[0]
    for name in (
        "liver",
        "pancreas",
        "kidney",
        "spleen",
        "vessel",
        "bone",
        "colon",
        "esophagus",
        "uterus",
    )
)


@pytest.fixture(scope="module", params=SEEDS)
def phantom(request: pytest.FixtureRequest) -> tuple[Volume, Volume]:
    return make_phantom(request.param)


def _ml(mask: np.ndarray, volume: Volume) -> float:
    return float(mask.sum() * np.prod(volume.spacing_mm) / 1000.0)


def _interior(mask: np.ndarray, voxels: int = 2) -> np.ndarray:
    """The mask minus a rim (so partial-volume edges do not count)."""
    return ndimage.binary_erosion(mask, iterations=voxels)


def _kidneys(label: np.ndarray) -> list[np.ndarray]:
    """The two largest connected kidney components."""
    components, _ = ndimage.label(label == KIDNEY)
    sizes = np.bincount(components.ravel())[1:]
    return [components == c + 1 for c in np.argsort(sizes)[::-1][:2]]


def _world_centroid(mask: np.ndarray, volume: Volume) -> np.ndarray:
    ijk = np.argwhere(mask).mean(axis=0)
    return volume.affine[:3, :3] @ ijk + volume.affine[:3, 3]


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_arrays() -> None:
    image_a, label_a = make_phantom(3, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    image_b, label_b = make_phantom(3, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    np.testing.assert_array_equal(image_a.array, image_b.array)
    np.testing.assert_array_equal(label_a.array, label_b.array)


def test_default_grid_is_deterministic(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    again_image, again_label = make_phantom(image.meta["seed"])
    np.testing.assert_array_equal(image.array, again_image.array)
    np.testing.assert_array_equal(label.array, again_label.array)


def test_different_seeds_give_different_phantoms() -> None:
    grid = {"shape": (96, 80, 48), "spacing_mm": (4.0, 4.0, 5.0)}
    image_a, label_a = make_phantom(1, **grid)
    image_b, label_b = make_phantom(2, **grid)
    assert not np.array_equal(image_a.array, image_b.array)
    assert np.count_nonzero(label_a.array != label_b.array) > 1000  # shapes differ, not just noise


def test_generator_and_none_seeds_record_a_reproducing_int() -> None:
    grid = {"shape": (48, 40, 24), "spacing_mm": (8.0, 8.0, 10.0)}
    for seed in (np.random.default_rng(11), None):
        image, label = make_phantom(seed, **grid)
        recorded = image.meta["seed"]
        assert isinstance(recorded, int) and label.meta["seed"] == recorded
        np.testing.assert_array_equal(make_phantom(recorded, **grid)[0].array, image.array)


def test_no_global_random_state_is_used() -> None:
    state = np.random.get_state()
    make_phantom(0, shape=(48, 40, 24), spacing_mm=(8.0, 8.0, 10.0))
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


# --------------------------------------------------------------------------- grid and header
def test_shape_dtype_spacing_affine_and_meta(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    assert image.shape == label.shape == (192, 160, 96)
    assert image.array.dtype == np.int16 and label.array.dtype == np.uint8
    assert image.spacing_mm == label.spacing_mm == (2.0, 2.0, 2.5)
    np.testing.assert_allclose(np.diag(image.affine)[:3], (2.0, 2.0, 2.5))  # RAS+, no flips
    np.testing.assert_array_equal(image.affine, label.affine)
    centre = image.affine[:3, :3] @ ((np.array(image.shape) - 1) / 2) + image.affine[:3, 3]
    np.testing.assert_allclose(centre, 0.0, atol=1e-6)
    for volume, dtype in ((image, np.int16), (label, np.uint8)):
        assert volume.path is None
        assert volume.meta["phantom"] is True and isinstance(volume.meta["seed"], int)
        header = volume.header
        assert isinstance(header, nib.Nifti1Header)
        assert header["descrip"].item().decode() == PHANTOM_DESCRIPTION
        assert "synthetic, not a patient" in PHANTOM_DESCRIPTION
        assert header.get_data_dtype() == dtype
        np.testing.assert_allclose(header.get_zooms(), (2.0, 2.0, 2.5))
        np.testing.assert_allclose(header.get_best_affine(), image.affine)


def test_round_trips_through_save_and_load(tmp_path, phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    for volume, name in ((image, "ct.nii.gz"), (label, "label.nii.gz")):
        loaded = load_volume(save_volume(volume, tmp_path / name))
        assert loaded.array.dtype == volume.array.dtype
        np.testing.assert_array_equal(loaded.array, volume.array)
        np.testing.assert_allclose(loaded.affine, volume.affine)
        assert loaded.header["descrip"].item().decode() == PHANTOM_DESCRIPTION


def test_small_and_coarse_grids_work() -> None:
    image, label = make_phantom(1, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    assert image.spacing_mm == (4.0, 4.0, 5.0)
    assert set(np.unique(label.array)) == {
        0,
        *(LIVER, PANCREAS, KIDNEY, SPLEEN, VESSEL, BONE),
        *(COLON, ESOPHAGUS, UTERUS),
    }
    image, label = make_phantom(1, shape=(16, 16, 16), spacing_mm=(2.0, 2.0, 2.0))
    assert image.shape == (16, 16, 16)  # a small FOV crops the anatomy around the centre


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shape": (64, 64)}, "shape"),
        ({"shape": (64, 64, 4)}, "shape"),
        ({"spacing_mm": (1.0, -1.0, 1.0)}, "spacing_mm"),
        ({"spacing_mm": (1.0, float("nan"), 1.0)}, "spacing_mm"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_phantom(**kwargs)


@pytest.mark.parametrize("seed", [True, 1.5, "0"])
def test_bad_seed_types_raise(seed: object) -> None:
    with pytest.raises(TypeError, match="seed"):
        make_phantom(seed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- labels and anatomy
def test_label_ids_are_exactly_the_healthy_phantom_preset(phantom: tuple[Volume, Volume]) -> None:
    _, label = phantom
    expected = {0} | {ids[0] for ids in PHANTOM.organs.values()}
    assert set(np.unique(label.array).tolist()) == expected == {0, 1, 3, 5, 7, 8, 9, 10, 11, 12}
    tumor_ids = {i for ids in PHANTOM.tumors.values() for i in ids}
    assert tumor_ids == {2, 4, 6} and not np.isin(label.array, list(tumor_ids)).any()


@pytest.mark.parametrize(
    "organ, lo_ml, hi_ml", [("liver", 1000, 2500), ("spleen", 100, 400), ("pancreas", 40, 120)]
)
def test_organ_volumes_are_plausible(
    phantom: tuple[Volume, Volume], organ: str, lo_ml: float, hi_ml: float
) -> None:
    _, label = phantom
    volume_ml = _ml(label.array == PHANTOM.organ_ids(organ)[0], label)
    assert lo_ml <= volume_ml <= hi_ml, f"{organ}: {volume_ml:.0f} mL"


def test_two_kidneys_of_plausible_size_on_both_sides(phantom: tuple[Volume, Volume]) -> None:
    _, label = phantom
    kidneys = _kidneys(label.array)
    assert _ml(label.array == KIDNEY, label) - sum(_ml(k, label) for k in kidneys) < 2.0
    xs = sorted(_world_centroid(k, label)[0] for k in kidneys)
    assert xs[0] < -40 and xs[1] > 40
    for kidney in kidneys:
        assert 100 <= _ml(kidney, label) <= 300
        coords = np.argwhere(kidney) * np.array(label.spacing_mm)
        lengths = 2 * np.sqrt(5 * np.linalg.eigvalsh(np.cov(coords.T)))[::-1]  # ellipsoid axes
        assert 85 <= lengths[0] <= 145 and 40 <= lengths[2] <= lengths[1] <= 75, lengths


def test_liver_is_on_the_patients_right_and_spleen_on_the_left(
    phantom: tuple[Volume, Volume],
) -> None:
    _, label = phantom
    liver_x = _world_centroid(label.array == LIVER, label)[0]
    spleen_x = _world_centroid(label.array == SPLEEN, label)[0]
    assert spleen_x < 0 < liver_x  # RAS+: +x is the patient's right


def test_anatomical_relations(phantom: tuple[Volume, Volume]) -> None:
    _, label = phantom
    lab = label.array
    bone = _world_centroid(lab == BONE, label)
    kidneys = [_world_centroid(k, label) for k in _kidneys(lab)]
    left_kidney, right_kidney = sorted(kidneys, key=lambda c: c[0])  # RAS+: +x is right
    liver = _world_centroid(lab == LIVER, label)
    pancreas_x = np.argwhere(lab == PANCREAS)[:, 0] * label.spacing_mm[0] + label.affine[0, 3]
    assert abs(bone[0]) < 20 and bone[1] < -20  # spine: midline, posterior
    assert max(right_kidney[1], left_kidney[1]) < liver[1]  # kidneys posterior to the liver
    assert left_kidney[2] > right_kidney[2]  # the right kidney sits lower, under the liver
    assert pancreas_x.max() > 20 and pancreas_x.min() < -40  # head right, tail to the left
    z_top = {
        name: np.nonzero((lab == i).any(axis=(0, 1)))[0].max()
        for name, i in (("liver", LIVER), ("pancreas", PANCREAS), ("kidney", KIDNEY))
    }
    assert z_top["liver"] > z_top["kidney"] and z_top["liver"] > z_top["pancreas"]


def test_liver_holds_a_4_cm_radius_tumor_deep_inside(phantom: tuple[Volume, Volume]) -> None:
    _, label = phantom
    liver = label.array == LIVER
    intrahepatic = (label.array == VESSEL) & ndimage.binary_closing(liver, iterations=3)
    depth_mm = ndimage.distance_transform_edt(liver | intrahepatic, sampling=label.spacing_mm)
    assert depth_mm.max() >= 40.0


def test_thin_liver_vessels_stay_liver_labelled_thick_ones_are_vessel(
    phantom: tuple[Volume, Volume],
) -> None:
    image, label = phantom
    ct = image.array.astype(np.float32)
    deep_liver = _interior(label.array == LIVER, 3)  # away from thick vessels and other organs
    deep_liver &= ndimage.distance_transform_edt(ct > -300) > 6  # and from lung and gas
    smooth = ndimage.gaussian_filter(ct, 1.0)[deep_liver]
    assert np.count_nonzero(smooth > np.median(smooth) + 30.0) > 50
    assert stats.skew(smooth) > 0.1  # noise is symmetric; enhancing thin vessels add a bright tail
    near_liver = ndimage.binary_dilation(label.array == LIVER, iterations=2)
    assert (near_liver & (label.array == VESSEL)).sum() > 500  # thick ones leave it


# --------------------------------------------------------------------------- intensities
@pytest.mark.parametrize(
    "organ, lo_hu, hi_hu",
    [
        ("liver", 95, 120),
        ("spleen", 100, 125),
        ("pancreas", 85, 115),
        ("kidney", 125, 180),
        ("vessel", 140, 200),
        ("bone", 200, 500),
    ],
)
def test_organ_interiors_have_contrast_enhanced_hu(
    phantom: tuple[Volume, Volume], organ: str, lo_hu: float, hi_hu: float
) -> None:
    image, label = phantom
    mask = label.array == PHANTOM.organ_ids(organ)[0]
    interior = _interior(mask, 1 if organ in ("pancreas", "vessel", "bone") else 2)
    assert interior.sum() > 200
    mean_hu = float(image.array[interior].mean())
    assert lo_hu <= mean_hu <= hi_hu, f"{organ}: {mean_hu:.1f} HU"


def test_liver_noise_is_ct_like(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    values = image.array[_interior(label.array == LIVER, 3)].astype(np.float64)
    robust_sd = 1.4826 * np.median(np.abs(values - np.median(values)))  # vessels are outliers
    assert 11.0 <= robust_sd <= 19.0
    # spatially correlated: neighbouring voxels are not independent
    liver = _interior(label.array == LIVER, 3)
    pairs = liver[:-1] & liver[1:]
    a = image.array[:-1][pairs].astype(np.float64)
    b = image.array[1:][pairs].astype(np.float64)
    assert np.corrcoef(a, b)[0, 1] > 0.2


def test_body_is_surrounded_by_air_and_holds_fat_and_muscle(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    a = image.array
    for face in (a[0], a[-1], a[:, 0], a[:, -1]):  # axial FOV border: x and y faces
        assert face.max() < -900
    assert np.all(label.array[[0, -1]] == 0) and np.all(label.array[:, [0, -1]] == 0)
    assert abs(float(np.median(a[:10, :10])) + 1000) < 30  # air about -1000 HU
    body = a[label.array == 0]
    body = body[body > -500]
    hist, edges = np.histogram(body, bins=np.arange(-200, 201, 20))
    peak_fat = edges[np.argmax(hist[:10])]
    assert -130 <= peak_fat <= -60  # fat around -90..-100 HU
    assert np.mean((body > 20) & (body < 80)) > 0.05  # muscle wall, psoas, paraspinal muscles
    assert a.min() >= -1024
