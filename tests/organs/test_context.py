import numpy as np
import pytest

from tumorsynth.errors import InputError, PlacementError
from tumorsynth.organs import LIVER, get_profile, registered_organs
from tumorsynth.organs.context import OrganContext


def blob_scan(noise_hu=15.0, parenchyma=110.0, with_vessel=True, seed=0):
    rng = np.random.default_rng(seed)
    shape = (90, 90, 50)
    grid = np.indices(shape).astype(np.float32)
    r = np.sqrt(
        ((grid[0] - 45) / 35) ** 2 + ((grid[1] - 45) / 35) ** 2 + ((grid[2] - 25) / 20) ** 2
    )
    organ = r < 1.0
    image = np.where(organ, parenchyma, -100.0).astype(np.float32)
    vessel = np.zeros(shape, bool)
    if with_vessel:
        vessel = (np.abs(grid[0] - 45) < 2) & (np.abs(grid[1] - 30) < 2) & organ
        image[vessel] = parenchyma + 90
    image += rng.normal(0, noise_hu, shape).astype(np.float32)
    return image.astype(np.int16), organ, vessel


def test_parenchyma_median_and_noise_are_measured():
    image, organ, _ = blob_scan(noise_hu=15.0, parenchyma=110.0)
    ctx = OrganContext.build(image, organ, (1.0, 1.0, 1.0), LIVER)
    assert ctx.parenchyma.median_hu == pytest.approx(110, abs=3)
    # 2 mm high-pass of white noise keeps most of its std.
    assert 11 < ctx.parenchyma.noise_hu < 16


def test_noisier_scan_measures_more_noise():
    quiet = OrganContext.build(blob_scan(noise_hu=8)[0], blob_scan()[1], (1.0, 1.0, 1.0), LIVER)
    loud = OrganContext.build(blob_scan(noise_hu=25)[0], blob_scan()[1], (1.0, 1.0, 1.0), LIVER)
    assert loud.parenchyma.noise_hu > 2 * quiet.parenchyma.noise_hu


def test_bright_vessel_lowers_clearance_near_it():
    image, organ, vessel = blob_scan()
    ctx = OrganContext.build(image, organ, (1.0, 1.0, 1.0), LIVER)
    near = ctx.clearance_mm[tuple(ctx.voxel_to_coarse(np.array([[45, 31, 25]]))[0])]
    far = ctx.clearance_mm[tuple(ctx.voxel_to_coarse(np.array([[45, 60, 25]]))[0])]
    assert near < 3 and far > 10
    assert ctx.parenchyma.vessel_fraction > 0


def test_depth_is_largest_in_the_middle_and_zero_outside():
    image, organ, _ = blob_scan(with_vessel=False)
    ctx = OrganContext.build(image, organ, (1.0, 1.0, 1.0), LIVER)
    centre, edge = ctx.depth_at(np.array([[45, 45, 25], [45, 80, 25]]))
    assert centre > 15 and edge < 3
    assert ctx.depth_at(np.array([[0, 0, 0]]))[0] == 0


def test_candidates_respect_depth_and_occupied_spheres():
    image, organ, _ = blob_scan(with_vessel=False)
    ctx = OrganContext.build(image, organ, (1.0, 1.0, 1.0), LIVER)
    deep = ctx.candidates(min_depth_mm=12.0)
    assert len(deep) and np.all(ctx.depth_at(ctx.coarse_to_voxel(deep)) >= 12.0 - 1e-4)
    ctx.occupy(np.array([45.0, 45.0, 25.0]), 10.0)
    free = ctx.coarse_to_voxel(ctx.candidates(min_depth_mm=5.0, keep_clear_mm=4.0))
    assert np.all(np.linalg.norm(free - [45, 45, 25], axis=1) >= 14.0 - 1e-6)


def test_existing_tumors_are_occupied():
    image, organ, _ = blob_scan(with_vessel=False)
    tumor = np.zeros(organ.shape, bool)
    tumor[40:50, 40:50, 20:30] = True
    ctx = OrganContext.build(image, organ & ~tumor, (1.0, 1.0, 1.0), LIVER, avoid_mask=tumor)
    assert len(ctx.occupied) == 1
    assert np.allclose(ctx.occupied[0].center_mm, (44.5, 44.5, 24.5))


def test_absent_organ_is_a_placement_error():
    image, organ, _ = blob_scan()
    with pytest.raises(PlacementError, match="absent"):
        OrganContext.build(image, np.zeros_like(organ), (1.0, 1.0, 1.0), LIVER, where="scan.nii.gz")


def test_profiles_are_registered_and_unknown_is_refused():
    assert {"liver", "pancreas", "kidney"} <= set(registered_organs())
    assert get_profile("kidney").placement.exophytic_probability > 0
    with pytest.raises(InputError, match="spleen"):
        get_profile("spleen")


def _nearest_mm(points_vox, mask, spacing):
    """Brute force: distance (mm) from each point to the nearest voxel of ``mask``."""
    voxels = np.argwhere(mask) * np.asarray(spacing)
    pos = np.asarray(points_vox, dtype=float) * np.asarray(spacing)
    return np.min(np.linalg.norm(pos[:, None, :] - voxels[None], axis=-1), axis=1)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.75, 0.75, 2.0), (3.0, 3.0, 3.0)])
def test_exclusion_distance_is_a_lower_bound_and_close_to_it(spacing):
    # Excluded voxels inside the organ, a thin sheet outside its box, and a single voxel.
    image, organ, _ = blob_scan(with_vessel=False)
    excluded = np.zeros(organ.shape, bool)
    excluded[30:34, 55:60, 20:24] = True
    excluded[88, :, 10] = True  # outside the organ's box (which ends at voxel 80)
    excluded[60, 40, 30] = True
    organ &= ~excluded
    ctx = OrganContext.build(image, organ, spacing, LIVER, exclude_mask=excluded)
    index = np.argwhere(ctx.depth_mm > 0)[::7]
    vox = ctx.coarse_to_voxel(index)
    bound = ctx.exclusion_mm[tuple(index.T)]
    # A tumor centre lies within half a coarse cell of its grid point: the bound holds there.
    jitter = float(np.linalg.norm(np.array(ctx.stride) / 2 * np.array(spacing)))
    true = _nearest_mm(vox, excluded, spacing)
    assert np.all(bound <= np.maximum(true - jitter, 0) + 1e-3)
    assert np.median(true - bound) < 2.5 * max(ctx.stride[i] * spacing[i] for i in range(3))
    assert np.all(ctx.excluded_clear_at(vox) == bound)


def test_nothing_excluded_leaves_candidates_as_they_were():
    image, organ, _ = blob_scan(with_vessel=False)
    plain = OrganContext.build(image, organ, (1.0, 1.0, 1.0), LIVER)
    empty = OrganContext.build(
        image, organ, (1.0, 1.0, 1.0), LIVER, exclude_mask=np.zeros_like(organ)
    )
    assert plain.exclusion_mm is None and np.isinf(empty.exclusion_mm).all()
    for ctx in (plain, empty):
        assert np.array_equal(
            ctx.candidates(min_depth_mm=5.0, excluded_clear_mm=30.0),
            plain.candidates(min_depth_mm=5.0),
        )


def test_candidates_keep_clear_of_excluded_voxels():
    image, organ, _ = blob_scan(with_vessel=False)
    lesion = np.zeros(organ.shape, bool)
    lesion[40:48, 40:48, 22:28] = True
    ctx = OrganContext.build(
        image, organ & ~lesion, (1.0, 1.0, 1.0), LIVER, exclude_mask=lesion, exclude_margin_mm=5.0
    )
    assert ctx.exclude_margin_mm == 5.0 and not ctx.occupied  # voxels, not a sphere
    for clear in (8.0, 15.0):
        free = ctx.coarse_to_voxel(ctx.candidates(min_depth_mm=3.0, excluded_clear_mm=clear))
        assert len(free) and _nearest_mm(free, lesion, (1, 1, 1)).min() >= clear
        site = ctx.pick(np.random.default_rng(0), min_depth_mm=3.0, excluded_clear_mm=clear)
        assert _nearest_mm(ctx.coarse_to_voxel(site[None]), lesion, (1, 1, 1))[0] >= clear
    # Nearer than a sphere around the lesion's box would allow (radius 6.6 + clear).
    near = ctx.coarse_to_voxel(ctx.candidates(min_depth_mm=3.0, excluded_clear_mm=8.0))
    assert np.linalg.norm(near - [43.5, 43.5, 24.5], axis=1).min() < 6.6 + 8.0


def test_confluent_spheres_may_overlap_others_may_not():
    image, organ, _ = blob_scan(with_vessel=False)
    ctx = OrganContext.build(image, organ, (1.0, 1.0, 1.0), LIVER)
    ctx.occupy(np.array([45.0, 45.0, 25.0]), 10.0, confluent=True)
    ctx.occupy(np.array([45.0, 70.0, 25.0]), 6.0)
    strict = ctx.coarse_to_voxel(ctx.candidates(min_depth_mm=3.0, keep_clear_mm=8.0))
    merged = ctx.coarse_to_voxel(
        ctx.candidates(min_depth_mm=3.0, keep_clear_mm=8.0, merge_fraction=0.5)
    )
    to_confluent = np.linalg.norm(merged - [45, 45, 25], axis=1)
    to_other = np.linalg.norm(merged - [45, 70, 25], axis=1)
    assert np.linalg.norm(strict - [45, 45, 25], axis=1).min() >= 18.0
    assert 14.0 <= to_confluent.min() < 18.0  # overlap up to half the smaller radius (8 mm)
    assert to_other.min() >= 14.0  # a non-confluent sphere keeps its full clearance
