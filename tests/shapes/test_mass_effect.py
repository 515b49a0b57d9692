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
