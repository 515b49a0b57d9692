import json
import math

import numpy as np
import pytest

from tumorsynth.shapes import Box, Satellite, ShapeSpec, render_shape, shape_box, soft_mask


def volume_mm3(spec, spacing=(0.5, 0.5, 0.5), half=30.0):
    box = Box.around(spec.center_vox, half, spacing, (400, 400, 400))
    field = render_shape(spec, spacing, box)
    return float((field.distance_mm < 0).sum()) * float(np.prod(spacing)), field


def test_sphere_distance_is_exact():
    spec = ShapeSpec(center_vox=(20.0, 20.0, 20.0), radii_mm=(6.0, 6.0, 6.0))
    field = render_shape(spec, (1.0, 1.0, 1.0), Box((0, 0, 0), (41, 41, 41)))
    assert field.distance_mm[20, 20, 20] == pytest.approx(-6.0)
    assert field.distance_mm[20, 20, 30] == pytest.approx(4.0, abs=1e-5)
    assert field.depth[20, 20, 20] == pytest.approx(1.0)
    assert field.depth[20, 20, 26] == pytest.approx(0.0, abs=1e-6)


def test_volume_matches_ellipsoid_in_mm_at_anisotropic_spacing():
    spec = ShapeSpec(center_vox=(100.0, 100.0, 40.0), radii_mm=(10.0, 7.0, 5.0))
    vol, _ = volume_mm3(spec, spacing=(0.4, 0.4, 1.0))
    assert vol == pytest.approx(4 / 3 * math.pi * 10 * 7 * 5, rel=0.03)


def test_rotation_keeps_volume_and_moves_extent():
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)  # 90 deg about axis 2
    base = ShapeSpec(center_vox=(60.0, 60.0, 60.0), radii_mm=(12.0, 4.0, 4.0))
    turned = ShapeSpec(
        center_vox=(60.0, 60.0, 60.0), radii_mm=(12.0, 4.0, 4.0), rotation=tuple(rot.ravel())
    )
    v0, f0 = volume_mm3(base)
    v1, f1 = volume_mm3(turned)
    assert v1 == pytest.approx(v0, rel=0.01)
    ext0 = np.ptp(np.nonzero(f0.distance_mm < 0)[0])
    ext1 = np.ptp(np.nonzero(f1.distance_mm < 0)[0])
    assert ext0 > 2 * ext1  # the long axis turned away from voxel axis 0


def test_larger_radius_larger_volume():
    small = ShapeSpec(
        center_vox=(60.0, 60.0, 60.0),
        radii_mm=(5.0, 5.0, 5.0),
        deform_amplitude_mm=1.0,
        deform_scale_mm=5.0,
        deform_seed=1,
    )
    large = ShapeSpec(
        center_vox=(60.0, 60.0, 60.0),
        radii_mm=(9.0, 9.0, 9.0),
        deform_amplitude_mm=1.0,
        deform_scale_mm=5.0,
        deform_seed=1,
    )
    assert volume_mm3(large)[0] > 4 * volume_mm3(small)[0]


def test_deformation_changes_the_outline_but_not_the_size():
    plain = ShapeSpec(center_vox=(60.0, 60.0, 60.0), radii_mm=(10.0, 10.0, 10.0))
    bumpy = ShapeSpec(
        center_vox=(60.0, 60.0, 60.0),
        radii_mm=(10.0, 10.0, 10.0),
        deform_amplitude_mm=1.5,
        deform_scale_mm=6.0,
        deform_seed=4,
    )
    v0, f0 = volume_mm3(plain)
    v1, f1 = volume_mm3(bumpy)
    assert v1 == pytest.approx(v0, rel=0.15)
    differ = np.count_nonzero((f0.distance_mm < 0) != (f1.distance_mm < 0))
    assert differ > 0.05 * np.count_nonzero(f0.distance_mm < 0)


def test_satellites_add_separate_nodules():
    spec = ShapeSpec(
        center_vox=(60.0, 60.0, 60.0),
        radii_mm=(8.0, 8.0, 8.0),
        satellites=(Satellite((16.0, 0.0, 0.0), 3.0),),
    )
    vol, field = volume_mm3(spec)
    assert vol == pytest.approx(4 / 3 * math.pi * (8**3 + 3**3), rel=0.05)
    from scipy import ndimage as ndi

    assert ndi.label(field.distance_mm < 0)[1] == 2
    assert spec.bounding_radius_mm >= 19.0


def test_soft_mask_is_half_on_the_surface_and_monotonic():
    d = np.linspace(-5, 5, 101, dtype=np.float32)
    m = soft_mask(d, 1.0)
    assert m[50] == pytest.approx(0.5)
    assert np.all(np.diff(m) <= 0)
    assert m[0] > 0.999 and m[-1] < 0.001
    assert np.array_equal(soft_mask(d, 0.0), (d < 0).astype(np.float32))


def test_spec_survives_json_exactly():
    spec = ShapeSpec(
        center_vox=(10.123456789, 20.5, 3.25),
        radii_mm=(1 / 3, 2.5, 7.0),
        rotation=tuple(np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0].ravel()),
        deform_amplitude_mm=0.7,
        deform_scale_mm=4.4,
        deform_seed=99,
        mass_effect=0.2,
        bulge_mm=1.5,
        satellites=(Satellite((1.0, 2.0, 3.0), 2.0),),
    )
    again = ShapeSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_shape_box_is_clipped_to_the_volume():
    spec = ShapeSpec(center_vox=(1.0, 1.0, 1.0), radii_mm=(5.0, 5.0, 5.0))
    box = shape_box(spec, (1.0, 1.0, 1.0), (20, 20, 20), margin_mm=2.0)
    assert box.origin == (0, 0, 0)
    assert all(o + n <= 20 for o, n in zip(box.origin, box.shape))
