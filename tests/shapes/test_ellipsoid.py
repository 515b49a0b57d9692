import json
import math

import numpy as np
import pytest

from tumorsynth.shapes import Box, Lobe, Satellite, ShapeSpec, render_shape, shape_box, soft_mask


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


# --- lobes and replay of the first records (issue 10) --------------------------------------------

#: A record's shape as written before lobes existed (no "lobes", no "mass_effect_resampling").
FIRST_RECORD_SHAPE = {
    "center_vox": [30.0, 30.0, 12.0],
    "radii_mm": [9.0, 7.0, 6.0],
    "rotation": [0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    "deform_amplitude_mm": 1.2,
    "deform_scale_mm": 6.0,
    "deform_seed": 7,
    "mass_effect": 0.2,
    "bulge_mm": 2.0,
    "exophytic": False,
    "satellites": [{"offset_mm": [14.0, 0.0, 0.0], "radius_mm": 3.0}],
}


def test_a_first_record_renders_as_it_did_before_lobes_existed():
    spec = ShapeSpec.from_dict(FIRST_RECORD_SHAPE)
    assert spec.lobes == () and spec.mass_effect_resampling == "trilinear"
    assert spec.to_dict() == FIRST_RECORD_SHAPE  # writes back the very record it was read from
    field = render_shape(spec, (0.8, 0.8, 1.6), Box((0, 0, 0), (60, 60, 24)))
    # Values rendered by the code before issue 10 (commit 007e806) from this record.
    assert int((field.distance_mm < 0).sum()) == 1651
    assert float(field.distance_mm.astype(np.float64).sum()) == pytest.approx(1135019.168, rel=1e-6)
    assert float(field.depth.astype(np.float64).sum()) == pytest.approx(417.6475, rel=1e-5)
    assert field.distance_mm[30, 30, 12] == pytest.approx(-4.1184382, abs=1e-5)
    assert field.distance_mm[10, 40, 5] == pytest.approx(14.730773, abs=1e-5)


def lobed(lobes, **kw):
    return ShapeSpec(center_vox=(60.0, 60.0, 60.0), radii_mm=(10.0, 8.0, 7.0), lobes=lobes, **kw)


def test_lobes_add_volume_and_make_the_body_less_convex():
    from scipy.spatial import ConvexHull

    plain = lobed(())
    bumpy = lobed((Lobe((9.0, 0.0, 0.0), 0.6), Lobe((0.0, -6.0, 4.0), 0.5)))
    v0, f0 = volume_mm3(plain)
    v1, f1 = volume_mm3(bumpy)
    assert v1 > 1.1 * v0
    assert np.all(f1.distance_mm <= f0.distance_mm)  # a union: the main body is all still there

    def solidity(field):
        points = np.argwhere(field.distance_mm < 0) * 0.5
        return len(points) * 0.125 / ConvexHull(points).volume

    assert solidity(f1) < solidity(f0) - 0.03
    # the lobe's own depth counts: its centre is deeper than the main surface next to it
    assert f1.depth.max() == pytest.approx(1.0) and f1.depth.min() == 0.0


def test_lobed_specs_survive_json_exactly_and_check_their_fields():
    spec = lobed((Lobe((1.5, -2.25, 3.0), 0.55),), mass_effect=0.3, mass_effect_resampling="split")
    assert ShapeSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match=r"lobes: expected scales in \(0, 1\], found \[1.5\]"):
        lobed((Lobe((0.0, 0.0, 0.0), 1.5),))


def test_drawn_shapes_stay_inside_their_half_extents_and_bounding_sphere():
    from tumorsynth.organs import get_profile
    from tumorsynth.shapes.placement import RandomTumorShape, random_rotation

    spacing = (0.8, 0.8, 1.6)
    rng = np.random.default_rng(5)
    n_lobes = []
    for organ in ("liver", "kidney", "pancreas"):
        drawer = RandomTumorShape(get_profile(organ))
        rule = get_profile(organ).rule("large")
        for _ in range(8):
            radii = tuple(float(rule.base_radius_mm * rng.uniform(0.6, 1.4)) for _ in range(3))
            rotation = random_rotation(rng)
            lobes = drawer._draw_lobes("large", radii, rotation, rng)
            n_lobes.append(len(lobes))
            spec = ShapeSpec(
                (0.0, 0.0, 0.0),
                radii,  # type: ignore[arg-type]
                tuple(rotation.ravel()),
                deform_amplitude_mm=0.15 * float(np.mean(radii)),
                deform_scale_mm=0.5 * float(np.mean(radii)),
                deform_seed=int(rng.integers(1000)),
                lobes=lobes,
            )
            half = spec.half_extents_mm()
            reach = np.ceil(half / np.asarray(spacing)).astype(int) + 3
            box = Box(tuple(-reach), tuple(2 * reach + 1))
            inside = np.argwhere(render_shape(spec, spacing, box).distance_mm < 0)
            mm = (inside - reach) * np.asarray(spacing)
            assert np.all(np.abs(mm) <= half + 1e-3), (organ, np.abs(mm).max(axis=0), half)
            assert np.linalg.norm(mm, axis=1).max() <= spec.bounding_radius_mm + 1e-3
    assert max(n_lobes) >= 4 and min(n_lobes) >= 1  # multinodular and lobulated draws both seen
