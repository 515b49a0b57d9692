"""Placement keeps what the organ profiles promise, checked on many drawn tumors.

The promises (``organs/profile.py``): each semi-axis lies in ``[0.75, 1.25]`` x the size class's
base radius; the centre keeps ``min(outer radius + 1 mm, vessel_clearance_mm)`` from bright
vessels; kidney tumors larger than tiny may be exophytic (centre within 0.35 outer radius of
the surface, growing out of the organ) and say so in their records; a draw that does not fit is
drawn again, and when nothing fits the error names the organ. The outer radius is the largest
semi-axis plus the deformation amplitude, the farthest the surface reaches from the centre.

Expected values come from the geometry (scipy's exact distance maps at full resolution, not the
pipeline's coarse grid), never from the random draws themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from tiny import synthesize_phantom

from tumorsynth.errors import PlacementError
from tumorsynth.io.label_maps import PRESETS, label_mask
from tumorsynth.io.nifti import Volume
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OrganContext
from tumorsynth.pipelines import TumorRequest, synthesize_case
from tumorsynth.shapes.ellipsoid import ShapeSpec
from tumorsynth.shapes.placement import RandomTumorShape

SIZES = ("tiny", "small", "medium", "large")
DRAWS = 15


def organ_context(phantom: tuple[Volume, Volume], organ: str) -> OrganContext:
    ct, seg = phantom
    mask = label_mask(seg.array, PRESETS["phantom"].organ_ids(organ))
    return OrganContext.build(ct.array, mask, ct.spacing_mm, get_profile(organ))


def outer_radius_mm(spec: ShapeSpec) -> float:
    return max(spec.radii_mm) + spec.deform_amplitude_mm


def depth_map_mm(mask: np.ndarray, spacing_mm) -> np.ndarray:
    """Exact distance (mm) from each organ voxel to the nearest voxel outside the organ."""
    return ndi.distance_transform_edt(np.pad(mask, 1), sampling=spacing_mm)[1:-1, 1:-1, 1:-1]


def at(field: np.ndarray, center_vox) -> float:
    return float(field[tuple(int(round(c)) for c in center_vox)])


def half_voxel_diagonal_mm(spacing_mm) -> float:
    """How far a centre may sit from the voxel it is read at (the draw jitters within a voxel
    of the placement grid)."""
    return 0.5 * float(np.linalg.norm(spacing_mm))


# --- semi-axes -----------------------------------------------------------------------------------


def test_semi_axes_stay_within_the_profiles_jitter_of_the_base_radius(phantom) -> None:
    for organ in ("liver", "kidney", "pancreas"):
        context = organ_context(phantom, organ)
        profile = get_profile(organ)
        fractions = []
        for size in SIZES:
            base = profile.rule(size).base_radius_mm
            for seed in range(DRAWS):
                spec = RandomTumorShape(profile).draw(context, size, seed)
                fractions.extend(r / base for r in spec.radii_mm)
        low, high = profile.shape.axis_jitter
        found = np.array(fractions)
        assert found.min() >= low and found.max() <= high, organ
        # the whole range is used, not one value of it (180 semi-axes per organ)
        assert found.min() < low + 0.05 and found.max() > high - 0.05, organ


def test_records_of_a_case_keep_the_semi_axes_of_their_size_class(phantom) -> None:
    ct, seg = phantom
    requests = [
        TumorRequest("liver", 2, "small"),
        TumorRequest("liver", 1, "medium"),
        TumorRequest("kidney", 1, "medium"),
        TumorRequest("pancreas", 1, "small"),
    ]
    for seed in range(2):
        out = synthesize_case(
            ct.array,
            seg.array,
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            requests=requests,
            rng=seed,
        )
        assert len(out.records) == 5
        for record in out.records:
            profile = get_profile(record.organ)
            base = profile.rule(record.size_class).base_radius_mm
            low, high = profile.shape.axis_jitter
            assert all(low * base <= r <= high * base for r in record.radii_mm), record


# --- vessel clearance ----------------------------------------------------------------------------


def organ_with_vessels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1 mm ellipsoidal 'liver' (110 HU, noise 12 HU) crossed by nine bright vessels (+90 HU,
    3 mm wide, 25 mm apart) whose positions the test knows exactly."""
    shape = (90, 90, 50)
    grid = np.indices(shape).astype(np.float32)
    organ = ((grid[0] - 45) / 38) ** 2 + ((grid[1] - 45) / 38) ** 2 + ((grid[2] - 25) / 22) ** 2 < 1
    vessels = np.zeros(shape, bool)
    for x in (20, 45, 70):
        for y in (20, 45, 70):
            vessels |= np.hypot(grid[0] - x, grid[1] - y) < 1.5
    vessels &= organ
    noise = np.random.default_rng(0).normal(0.0, 12.0, shape)
    image = np.where(organ, 110.0, -100.0) + np.where(vessels, 90.0, 0.0) + noise
    return image.astype(np.int16), organ, vessels


def test_centres_keep_the_promised_clearance_from_vessels() -> None:
    image, organ, vessels = organ_with_vessels()
    liver = get_profile("liver")
    context = OrganContext.build(image, organ, (1.0, 1.0, 1.0), liver)
    to_vessel = ndi.distance_transform_edt(~vessels)  # mm at 1 mm voxels
    # The placement grid is about 1.5 mm (2 voxels here): a centre may lose up to one grid step.
    tolerance = 2.0
    worst = np.inf
    for size in ("tiny", "small", "medium"):
        for seed in range(40):
            spec = RandomTumorShape(liver).draw(context, size, seed)
            promised = min(outer_radius_mm(spec) + 1.0, liver.placement.vessel_clearance_mm)
            worst = min(worst, at(to_vessel, spec.center_vox) - promised)
    assert worst >= -tolerance
    # Not by chance: over 10% of the organ deep enough for a tumor lies closer to a vessel than
    # that, so 120 centres placed blind to the vessels would land there about 12 times.
    deep = depth_map_mm(organ, (1.0, 1.0, 1.0)) >= liver.placement.min_depth_mm
    close = to_vessel < liver.placement.vessel_clearance_mm - tolerance
    assert (close & deep).sum() > 0.1 * deep.sum()


# --- exophytic kidney tumors ---------------------------------------------------------------------


def test_exophytic_kidney_tumors_sit_at_the_surface_and_others_inside(phantom) -> None:
    ct, seg = phantom
    kidney = get_profile("kidney")
    context = organ_context(phantom, "kidney")
    depth = depth_map_mm(
        label_mask(seg.array, PRESETS["phantom"].organ_ids("kidney")), ct.spacing_mm
    )
    slack = half_voxel_diagonal_mm(ct.spacing_mm)
    shallow_max = kidney.placement.exophytic_depth[1]
    seen = {True: 0, False: 0}
    for size in ("small", "medium", "large"):
        for seed in range(DRAWS):
            spec = RandomTumorShape(kidney).draw(context, size, seed)
            seen[spec.exophytic] += 1
            centre_depth = at(depth, spec.center_vox)
            outer = outer_radius_mm(spec)
            if spec.exophytic:
                assert 0 < centre_depth <= shallow_max * outer + slack, (size, seed)
            else:
                needed = max(kidney.placement.min_depth_mm, kidney.placement.depth_fraction * outer)
                assert centre_depth >= needed - slack, (size, seed)
    assert seen[True] >= 10 and seen[False] >= 10, seen  # probability 0.5 each, 45 draws


def test_tiny_kidney_tumors_and_liver_tumors_are_never_exophytic(phantom) -> None:
    kidney, liver = get_profile("kidney"), get_profile("liver")
    kidney_context, liver_context = (
        organ_context(phantom, "kidney"),
        organ_context(phantom, "liver"),
    )
    for seed in range(DRAWS):
        assert not RandomTumorShape(kidney).draw(kidney_context, "tiny", seed).exophytic
        for size in SIZES:
            assert not RandomTumorShape(liver).draw(liver_context, size, seed).exophytic


def test_exophytic_records_grow_out_of_the_kidney(phantom) -> None:
    """A ball whose centre lies 0.35 radius under a flat surface has 25% of its volume outside;
    0.5 radius under it (the kidney's depth fraction), 16%: 20% tells the two apart."""
    ct, seg = phantom
    kidney = label_mask(seg.array, PRESETS["phantom"].organ_ids("kidney"))
    outside = {True: [], False: []}
    for seed in range(8):
        out = synthesize_phantom(phantom, organ="kidney", count=1, size="medium", rng=seed)
        (record,) = out.records
        tumor = out.label == record.tumor_label
        assert tumor.sum() == record.n_voxels > 0
        outside[record.exophytic].append(float((tumor & ~kidney).sum() / tumor.sum()))
    assert outside[True] and outside[False], outside  # both kinds occur in 8 cases
    assert min(outside[True]) > 0.2 > max(outside[False]), outside


# --- retries and the error when nothing fits ------------------------------------------------------


def ball_organ(radius_mm: float, shape=(40, 40, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A ball 'liver' of ``radius_mm`` at 1 mm voxels (110 HU, no vessels)."""
    grid = np.indices(shape).astype(np.float32)
    centre = [(n - 1) / 2 for n in shape]
    organ = sum((grid[i] - centre[i]) ** 2 for i in range(3)) < radius_mm**2
    return np.where(organ, 110, -100).astype(np.int16), organ


def test_a_draw_too_big_for_the_organ_is_drawn_again_smaller() -> None:
    liver = get_profile("liver")
    fraction = liver.placement.depth_fraction

    def needed_depth(spec: ShapeSpec) -> float:
        return max(liver.placement.min_depth_mm, fraction * outer_radius_mm(spec))

    image, organ = ball_organ(13.0)
    context = OrganContext.build(image, organ, (1.0, 1.0, 1.0), liver)
    deepest = float(depth_map_mm(organ, (1.0, 1.0, 1.0)).max())
    specs = [RandomTumorShape(liver).draw(context, "medium", seed) for seed in range(30)]
    assert all(needed_depth(spec) <= deepest + 1.0 for spec in specs)  # 1 mm: the grid step
    # Not by chance: in a roomy organ, a third of medium tumors need more depth than this one has.
    roomy_image, roomy = ball_organ(21.0, shape=(46, 46, 46))
    roomy_context = OrganContext.build(roomy_image, roomy, (1.0, 1.0, 1.0), liver)
    free = [RandomTumorShape(liver).draw(roomy_context, "medium", seed) for seed in range(30)]
    assert sum(needed_depth(spec) > deepest + 1.0 for spec in free) >= 5


def test_an_organ_too_thin_for_the_size_raises_naming_the_organ_and_the_depths() -> None:
    liver = get_profile("liver")
    image, organ = ball_organ(3.5)
    context = OrganContext.build(image, organ, (1.0, 1.0, 1.0), liver)
    with pytest.raises(PlacementError) as info:
        RandomTumorShape(liver).draw(context, "small", 0, where="thin.nii.gz")
    text = str(info.value)
    assert "thin.nii.gz" in text and "liver is too small for a small tumor" in text, text
    assert "deepest point of this liver" in text and "smaller --size" in text, text


def test_a_full_organ_raises_naming_the_organ(phantom) -> None:
    ct, seg = phantom
    with pytest.raises(PlacementError, match=r"ph\.nii\.gz: no room left in the liver") as info:
        synthesize_case(
            ct.array,
            seg.array,
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            organ="liver",
            count=40,
            size="medium",
            rng=0,
            where="ph.nii.gz",
        )
    assert "fewer or smaller tumors" in str(info.value)
