"""The shape draw's lobes and mass-effect resampling (issue 10): new draws are lobulated (more
often multinodular the larger the class) and keep the scan's noise when they push tissue."""

from dataclasses import replace

import numpy as np

from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OrganContext
from tumorsynth.organs.profile import ShapeRules
from tumorsynth.shapes import RandomTumorShape


def ball_context(profile, radius_mm=40.0, shape=(90, 90, 90)):
    grid = np.indices(shape).astype(np.float32)
    centre = [(n - 1) / 2 for n in shape]
    organ = sum((grid[i] - centre[i]) ** 2 for i in range(3)) < radius_mm**2
    image = np.where(organ, 110, -100).astype(np.int16)
    return OrganContext.build(image, organ, (1.0, 1.0, 1.0), profile)


def test_new_draws_are_lobulated_and_ask_for_the_noise_keeping_resampling():
    liver = get_profile("liver")
    context = ball_context(liver)
    counts = {}
    for size in ("small", "large"):
        specs = [RandomTumorShape(liver).draw(context, size, seed) for seed in range(20)]
        assert all(s.mass_effect_resampling == "split" for s in specs)
        assert all(1 <= len(s.lobes) <= 7 for s in specs)
        counts[size] = np.mean([len(s.lobes) for s in specs])
    # large liver tumors are multinodular more often (4-7 lobes) than small ones (mostly 1-4)
    assert counts["large"] > counts["small"] + 1.0


def test_a_profile_without_lobes_draws_the_smooth_ellipsoid_and_the_same_geometry():
    liver = get_profile("liver")
    smooth = replace(
        liver,
        shape=replace(liver.shape, lobes=(0, 0)),
        size_classes={
            k: replace(r, multinodular_probability=0.0) for k, r in liver.size_classes.items()
        },
    )
    context = ball_context(liver)
    for seed in range(5):
        a = RandomTumorShape(smooth).draw(context, "medium", seed)
        b = RandomTumorShape(liver).draw(context, "medium", seed)
        assert a.lobes == ()
        # lobes are drawn last: size, orientation, deformation and site are the same draw
        assert (a.center_vox, a.radii_mm, a.rotation, a.deform_seed) == (
            b.center_vox,
            b.radii_mm,
            b.rotation,
            b.deform_seed,
        )


def test_default_shape_rules_have_no_lobes():
    assert ShapeRules().lobes == (0, 0)
