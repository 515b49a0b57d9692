import numpy as np
import pytest

from tumorsynth.shapes import ShapeSpec, apply_mass_effect, mass_effect_box
from tumorsynth.shapes.mass_effect import MASS_EFFECT_REACH


def shell_image(shape=(81, 81, 81), center=40, radius_vox=14):
    """A thin bright spherical shell (a 'vessel' ring) around the centre."""
    grid = np.indices(shape).astype(np.float32) - center
    r = np.sqrt((grid**2).sum(axis=0))
    image = np.where(np.abs(r - radius_vox) < 1.0, 200.0, 100.0).astype(np.float32)
    return image, r


def test_no_mass_effect_no_box():
    spec = ShapeSpec(center_vox=(40.0, 40.0, 40.0), radii_mm=(10.0, 10.0, 10.0))
    assert mass_effect_box(spec, (1.0, 1.0, 1.0), (81, 81, 81)) is None


def test_tissue_is_pushed_outward_and_far_tissue_stays():
    image, r = shell_image(radius_vox=12)
    label = np.where(r < 30, 1, 0).astype(np.uint8)
    spec = ShapeSpec(center_vox=(40.0, 40.0, 40.0), radii_mm=(10.0, 10.0, 10.0), mass_effect=0.35)
    box = mass_effect_box(spec, (1.0, 1.0, 1.0), image.shape)
    sub = box.slices
    out = apply_mass_effect(spec, (1.0, 1.0, 1.0), box, image[sub].copy(), label[sub].copy())
    rr = r[sub]
    bright_before = rr[image[sub] > 150].mean()
    bright_after = rr[out.image > 150].mean()
    assert bright_after > bright_before + 0.3  # the shell moved outward
    far = rr > MASS_EFFECT_REACH * 10 + 1
    assert np.array_equal(out.image[far], image[sub][far])
    assert not out.moved[far].any()


def test_more_mass_effect_moves_tissue_further():
    image, r = shell_image()
    label = np.zeros(image.shape, np.uint8)
    shifts = []
    for alpha in (0.1, 0.4):
        spec = ShapeSpec(
            center_vox=(40.0, 40.0, 40.0), radii_mm=(10.0, 10.0, 10.0), mass_effect=alpha
        )
        box = mass_effect_box(spec, (1.0, 1.0, 1.0), image.shape)
        out = apply_mass_effect(
            spec, (1.0, 1.0, 1.0), box, image[box.slices].copy(), label[box.slices]
        )
        shifts.append(r[box.slices][out.image > 150].mean())
    assert shifts[1] > shifts[0]


def test_label_moves_with_the_tissue():
    image, r = shell_image()
    label = np.where(r < 12.0, 1, 0).astype(np.uint8)  # an organ edge just outside the tumor
    spec = ShapeSpec(center_vox=(40.0, 40.0, 40.0), radii_mm=(10.0, 10.0, 10.0), mass_effect=0.4)
    box = mass_effect_box(spec, (1.0, 1.0, 1.0), image.shape)
    out = apply_mass_effect(
        spec, (1.0, 1.0, 1.0), box, image[box.slices].copy(), label[box.slices].copy()
    )
    assert out.label.sum() > label[box.slices].sum() * 1.05
    assert set(np.unique(out.label)) <= {0, 1}


def test_inputs_are_not_modified():
    image, r = shell_image()
    label = np.zeros(image.shape, np.uint8)
    spec = ShapeSpec(center_vox=(40.0, 40.0, 40.0), radii_mm=(10.0, 10.0, 10.0), mass_effect=0.3)
    box = mass_effect_box(spec, (1.0, 1.0, 1.0), image.shape)
    crop = image[box.slices].copy()
    before = crop.copy()
    apply_mass_effect(spec, (1.0, 1.0, 1.0), box, crop, label[box.slices])
    assert np.array_equal(crop, before)


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.6, 0.95])
def test_warp_never_folds_tissue(alpha):
    # Warp a radial ramp (value = distance from the centre): along every ray out from the tumor
    # surface the warped values must stay non-decreasing, or tissue would have folded over itself
    # (inside the tumor the tissue is replaced, so the map may collapse there).
    _, r = shell_image()
    spec = ShapeSpec(center_vox=(40.0, 40.0, 40.0), radii_mm=(10.0, 10.0, 10.0), mass_effect=alpha)
    box = mass_effect_box(spec, (1.0, 1.0, 1.0), r.shape)
    out = apply_mass_effect(
        spec, (1.0, 1.0, 1.0), box, r[box.slices].astype(np.float32), np.zeros(box.shape, np.uint8)
    )
    c = [40 - o for o in box.origin]
    for ray in (
        out.image[c[0] + 10 :, c[1], c[2]],
        out.image[c[0], c[1] + 10 :, c[2]],
        out.image[c[0], c[1], c[2] + 10 :],
    ):
        assert np.all(np.diff(ray) >= -0.05)
    assert out.moved.any()


# --- the scan's noise in the pushed tissue (issue 10) --------------------------------------------


def noisy_liver(shape=(100, 100, 50), spacing=(0.8, 0.8, 1.6), noise_hu=16.0, seed=0):
    """Liver-like tissue: a smooth 110 HU background with a slow gradient plus CT-like grainy
    noise (white noise smoothed by 0.7 voxel, scaled to ``noise_hu``)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    grain = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.7)
    grain *= np.float32(noise_hu / grain.std())
    ramp = np.linspace(-10.0, 10.0, shape[0], dtype=np.float32)[:, None, None]
    return (110.0 + ramp + grain).astype(np.float32), spacing


def shell_noise_hu(image, spacing, spec, box):
    """Robust std (HU) of the 2 mm high-pass of ``image`` (the crop ``box``) in the shell 3-8 mm
    outside ``spec``'s ellipsoid (the ring the issue measured)."""
    from scipy import ndimage as ndi

    from tumorsynth.organs.context import robust_std
    from tumorsynth.shapes import render_shape

    high = image - ndi.gaussian_filter(image, [2.0 / s for s in spacing])
    d = render_shape(spec, spacing, box).distance_mm
    return robust_std(high[(d > 3.0) & (d <= 8.0)])


def large_tumor(resampling="trilinear"):
    return ShapeSpec(
        center_vox=(50.0, 50.0, 25.0),
        radii_mm=(14.0, 12.0, 13.0),
        mass_effect=0.4,
        mass_effect_resampling=resampling,
    )


def test_split_resampling_keeps_the_shell_noise_trilinear_smooths_it():
    image, spacing = noisy_liver()
    before = None
    after = {}
    for mode in ("trilinear", "split"):
        spec = large_tumor(mode)
        box = mass_effect_box(spec, spacing, image.shape)
        crop = image[box.slices].copy()
        out = apply_mass_effect(spec, spacing, box, crop, np.ones(box.shape, np.uint8))
        before = shell_noise_hu(crop, spacing, spec, box)
        after[mode] = shell_noise_hu(out.image, spacing, spec, box)
    assert after["split"] == pytest.approx(before, rel=0.05)
    assert after["trilinear"] < 0.9 * before  # the defect the split resampling removes


def test_split_resampling_moves_the_tissue_like_trilinear():
    image, r = shell_image(radius_vox=12)
    label = np.zeros(image.shape, np.uint8)
    radius = {}
    for mode in ("trilinear", "split"):
        spec = ShapeSpec(
            center_vox=(40.0, 40.0, 40.0),
            radii_mm=(10.0, 10.0, 10.0),
            mass_effect=0.35,
            mass_effect_resampling=mode,
        )
        box = mass_effect_box(spec, (1.0, 1.0, 1.0), image.shape)
        out = apply_mass_effect(spec, (1.0, 1.0, 1.0), box, image[box.slices], label)
        radius[mode] = r[box.slices][out.image > 150].mean()
    before = r[image > 150].mean()
    assert radius["split"] > before + 0.3  # pushed outward
    assert radius["split"] == pytest.approx(radius["trilinear"], abs=0.15)


def test_an_old_record_keeps_the_trilinear_resampling():
    from scipy import ndimage as ndi

    image, spacing = noisy_liver(seed=3)
    record = {"center_vox": [50.0, 50.0, 25.0], "radii_mm": [14.0, 12.0, 13.0], "mass_effect": 0.3}
    old = ShapeSpec.from_dict(record)
    assert old.mass_effect_resampling == "trilinear"
    assert "mass_effect_resampling" not in old.to_dict()  # writes the record it was read from
    box = mass_effect_box(old, spacing, image.shape)
    crop = image[box.slices].copy()
    label = np.ones(box.shape, np.uint8)
    out = apply_mass_effect(old, spacing, box, crop, label)
    split = apply_mass_effect(
        ShapeSpec.from_dict({**record, "mass_effect_resampling": "split"}),
        spacing,
        box,
        crop,
        label,
    )
    assert np.array_equal(out.moved, split.moved)
    assert np.all(out.image[~out.moved] == crop[~out.moved])
    moved = np.nonzero(out.moved)
    # trilinear blends neighbours: within the input's range and smoother than it
    assert out.image[moved].min() >= crop.min() and out.image[moved].max() <= crop.max()
    assert ndi.laplace(out.image)[moved].std() < 0.8 * ndi.laplace(split.image)[moved].std()


def test_an_unknown_resampling_is_refused_by_name():
    with pytest.raises(ValueError, match="mass_effect_resampling.*'cubic'"):
        ShapeSpec((1.0, 1.0, 1.0), (2.0, 2.0, 2.0), mass_effect_resampling="cubic")  # type: ignore[arg-type]


def test_split_resampling_with_a_push_too_small_to_move_a_voxel():
    image, _ = noisy_liver(shape=(40, 40, 20))
    spec = ShapeSpec(
        (20.0, 20.0, 10.0), (5.0, 5.0, 5.0), mass_effect=1e-6, mass_effect_resampling="split"
    )
    box = mass_effect_box(spec, (0.8, 0.8, 1.6), image.shape)
    out = apply_mass_effect(spec, (0.8, 0.8, 1.6), box, image[box.slices], np.ones(box.shape, "u1"))
    assert not out.moved.any()
    assert np.array_equal(out.image, image[box.slices])
