import numpy as np

from tumorsynth.shapes.fields import smooth_random_field


def axes(n: int, step: float, start: float = 0.0):
    ax = start + np.arange(n) * step
    return ax, ax, ax


def test_unit_variance_and_zero_mean_over_many_seeds():
    values = np.concatenate(
        [
            smooth_random_field(axes(24, 1.0, -12), scale_mm=3.0, extent_mm=14.0, seed=s).ravel()
            for s in range(20)
        ]
    )
    assert abs(values.mean()) < 0.1
    assert 0.85 < values.std() < 1.15


def test_same_seed_same_field_other_seed_other_field():
    a = smooth_random_field(axes(10, 1.0), scale_mm=4.0, extent_mm=12.0, seed=7, components=2)
    b = smooth_random_field(axes(10, 1.0), scale_mm=4.0, extent_mm=12.0, seed=7, components=2)
    c = smooth_random_field(axes(10, 1.0), scale_mm=4.0, extent_mm=12.0, seed=8, components=2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])


def test_values_depend_on_position_not_on_the_crop():
    whole = smooth_random_field(axes(20, 1.0, -10), scale_mm=4.0, extent_mm=15.0, seed=3)
    part_axes = (np.arange(5, 12) - 10.0, np.arange(0, 20) - 10.0, np.arange(3, 9) - 10.0)
    part = smooth_random_field(part_axes, scale_mm=4.0, extent_mm=15.0, seed=3)
    assert np.allclose(part[0], whole[0, 5:12, :, 3:9], atol=1e-5)


def test_larger_scale_is_smoother():
    def roughness(scale):
        f = smooth_random_field(axes(40, 1.0, -20), scale_mm=scale, extent_mm=22.0, seed=1)[0]
        return float(np.abs(np.diff(f, axis=0)).mean())

    assert roughness(8.0) < roughness(2.0)
