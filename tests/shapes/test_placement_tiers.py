"""Placement relaxes as anatomy does, only where the strict rules find no site.

The liver profile's tiers: large tumors may reach the organ surface (centre
``surface_depth_fraction`` x radius deep instead of ``depth_fraction``), and medium and large ones
may be confluent (bounding spheres overlapping by up to ``confluent_overlap`` x the smaller
radius); small ones keep separate. A draw that the strict rules place is unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tumorsynth.errors import PlacementError
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OrganContext
from tumorsynth.shapes.placement import RandomTumorShape

LIVER = get_profile("liver")
STRICT_LIVER = replace(
    LIVER, placement=replace(LIVER.placement, surface_sizes=(), confluent_sizes=())
)
SPACING = (2.0, 2.0, 2.0)


def ellipsoid_context(semi_axes_mm, seed=0) -> OrganContext:
    """An ellipsoidal organ of uniform 110 HU parenchyma with 10 HU noise, 2 mm voxels."""
    shape = tuple(int(2 * a / 2.0) + 8 for a in semi_axes_mm)
    grid = np.indices(shape, dtype=np.float32)
    r2 = sum(((g - (n - 1) / 2) * 2.0 / a) ** 2 for g, n, a in zip(grid, shape, semi_axes_mm))
    organ = r2 < 1.0
    rng = np.random.default_rng(seed)
    image = np.where(organ, 110.0, -100.0) + rng.normal(0, 10, shape)
    return OrganContext.build(image.astype(np.int16), organ, SPACING, LIVER)


def test_tiers_per_size_class():
    tiers = RandomTumorShape(LIVER)._placement_tiers
    assert tiers("large") == [(0.6, 0.0), (0.3, 0.0), (0.3, 0.5)]
    assert tiers("medium") == [(0.6, 0.0), (0.6, 0.5)]
    assert tiers("small") == tiers("tiny") == [(0.6, 0.0)]
    assert RandomTumorShape(get_profile("kidney"))._placement_tiers("large") == [(0.5, 0.0)]


@pytest.mark.parametrize("size", ["medium", "large"])
def test_a_site_the_strict_rules_find_is_drawn_as_before(size):
    """Where the organ has room, the relaxed profile draws exactly what the strict one does."""
    context = ellipsoid_context((110.0, 90.0, 80.0))
    for seed in range(6):
        relaxed = RandomTumorShape(LIVER).draw(context, size, seed)
        strict = RandomTumorShape(STRICT_LIVER).draw(context, size, seed)
        assert relaxed == strict


def test_a_second_large_tumor_reaches_the_surface_where_no_deep_site_remains():
    context = ellipsoid_context((100.0, 70.0, 45.0))
    first = RandomTumorShape(LIVER).draw(context, "large", 1)
    context.occupy(np.asarray(first.center_vox), first.bounding_radius_mm, confluent=True)
    placed = failed = 0
    for seed in range(8):
        try:
            RandomTumorShape(STRICT_LIVER).draw(context, "large", seed)
        except PlacementError as error:
            assert "no room left in the liver" in str(error)
            failed += 1
        second = RandomTumorShape(LIVER).draw(context, "large", seed)  # never raises here
        gap = np.linalg.norm(
            (np.asarray(second.center_vox) - first.center_vox) * np.asarray(SPACING)
        )
        depth = float(context.depth_at(np.asarray(second.center_vox)[None])[0])
        outer = max(second.radii_mm) + second.deform_amplitude_mm
        separate = gap >= first.bounding_radius_mm + outer + LIVER.placement.gap_mm - 1e-6
        # Either at the surface (shallower than the strict 0.6 radius) or confluent (closer).
        assert depth < 0.6 * outer + 2.0 or not separate
        placed += 1
    assert failed >= 4 and placed == 8


def test_small_tumors_never_merge():
    """Small tumors fill the organ until none fits; each keeps gap_mm from the ones before it
    (its outer radius from their bounding spheres), up to the jitter of a centre in its cell."""
    context = ellipsoid_context((40.0, 35.0, 30.0))
    shape = RandomTumorShape(LIVER)
    specs = []
    with pytest.raises(PlacementError, match="no room left in the liver for another small"):
        for seed in range(200):
            spec = shape.draw(context, "small", seed)
            context.occupy(np.asarray(spec.center_vox), spec.bounding_radius_mm, confluent=True)
            specs.append(spec)
    jitter = 0.5 * float(np.linalg.norm(SPACING))
    assert len(specs) >= 5
    for j, new in enumerate(specs):
        outer = max(new.radii_mm) + new.deform_amplitude_mm
        for old in specs[:j]:
            gap = np.linalg.norm((np.subtract(new.center_vox, old.center_vox)) * SPACING)
            assert gap >= old.bounding_radius_mm + outer + LIVER.placement.gap_mm - jitter
