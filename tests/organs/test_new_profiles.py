"""The colon, esophagus and uterus: profiles, their appearance draws, the hollow-organ analysis
and their label ids (issue 15)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from shared_data import require_data

from tumorsynth._types import SIZE_CLASSES
from tumorsynth.errors import InputError
from tumorsynth.generators.heuristic import HeuristicGenerator
from tumorsynth.generators.protocol import TumorSite
from tumorsynth.io.datasets import read_abdomenatlas_label
from tumorsynth.io.label_maps import (
    OUTPUT_LABELS,
    PRESETS,
    check_shared_ids,
    label_mask,
    resolve_label_map,
    to_output_labels,
)
from tumorsynth.organs import get_profile, registered_organs
from tumorsynth.organs.context import OrganContext, ParenchymaStats
from tumorsynth.organs.label_check import LabelMapWarning, check_label_map
from tumorsynth.organs.label_priors import ORGAN_PRIORS
from tumorsynth.shapes.ellipsoid import ShapeSpec

NEW = ("colon", "esophagus", "uterus")
TUBES = ("colon", "esophagus")


def increasing(values: list[float]) -> bool:
    return all(a <= b for a, b in zip(values, values[1:]))


# --- profiles ------------------------------------------------------------------------------------


def test_new_organs_are_registered_with_their_kind() -> None:
    assert set(NEW) <= set(registered_organs())
    for organ in NEW:
        assert get_profile(organ).name == organ
    for organ in TUBES:
        profile = get_profile(organ)
        assert profile.wall is not None and profile.tissue_hu is not None
    uterus = get_profile("uterus")
    assert uterus.wall is None and uterus.tissue_hu is None  # a solid organ: ellipsoids
    # the old organs keep their analysis: no tissue range, no wall
    for organ in ("liver", "pancreas", "kidney"):
        assert get_profile(organ).wall is None and get_profile(organ).tissue_hu is None


@pytest.mark.parametrize("organ", TUBES)
def test_wall_rules_grow_with_the_size_class(organ: str) -> None:
    wall = get_profile(organ).wall
    assert wall is not None
    for rule in (wall.length_mm, wall.thickness_mm):
        lows = [rule[c][0] for c in SIZE_CLASSES]
        highs = [rule[c][1] for c in SIZE_CLASSES]
        assert all(0 < lo < hi for lo, hi in zip(lows, highs))
        assert increasing(lows) and increasing(highs)
    annular = [wall.annular_probability[c] for c in SIZE_CLASSES]
    assert annular[0] == 0.0 and annular[-1] >= 0.8  # early: eccentric; large: apple core
    assert all(a < b for a, b in zip(annular, annular[1:]))
    # early stage (tiny, small) is focal and under 1 cm thick, not circumferential
    assert wall.thickness_mm["small"][1] <= 10.0 and wall.annular_probability["small"] < 0.2
    assert 0 < wall.arc_deg[0] < wall.arc_deg[1] < 360
    assert 0 < wall.min_lumen_mm < wall.min_radius_mm
    assert get_profile(organ).placement.bulge_mm >= wall.outgrowth_mm[1]
    # the nominal base radius: half a typical thickness of the class
    for c in SIZE_CLASSES:
        lo, hi = wall.thickness_mm[c]
        assert lo <= 2 * get_profile(organ).rule(c).base_radius_mm <= hi


@pytest.mark.parametrize("organ", NEW)
def test_size_classes_counts_and_weights_are_consistent(organ: str) -> None:
    profile = get_profile(organ)
    radii = [profile.rule(c).base_radius_mm for c in SIZE_CLASSES]
    assert all(a < b for a, b in zip(radii, radii[1:]))
    for c in SIZE_CLASSES:
        low, high = profile.rule(c).count
        assert 1 <= low <= high <= 2  # one primary, rarely a second
    assert sum(profile.mixed_weights.values()) == pytest.approx(1.0)
    assert all(profile.mixed_weights[c] > 0 for c in SIZE_CLASSES)
    lo, hi = profile.expected_parenchyma_hu
    if profile.tissue_hu is not None:  # the measured median lies in the tissue range
        assert profile.tissue_hu[0] <= lo < hi <= profile.tissue_hu[1]


def test_uterine_tumors_are_central_and_darker_than_myometrium() -> None:
    uterus = get_profile("uterus")
    assert uterus.placement.depth_fraction >= 0.75  # deep: the endometrial cavity
    lo, hi = uterus.appearance.contrast_hu
    assert lo < hi < 0
    assert uterus.appearance.cyst_probability == 0.0
    # endometrial tumors from a few mm to over 5 cm across
    assert 2 * 0.75 * uterus.rule("tiny").base_radius_mm <= 6.0
    assert 2 * 1.25 * uterus.rule("large").base_radius_mm > 50.0


@pytest.mark.parametrize("organ", NEW)
def test_the_priors_hold_the_new_organs_profile_range(organ: str) -> None:
    lo, hi = get_profile(organ).expected_parenchyma_hu
    prior = ORGAN_PRIORS[organ]
    assert prior.median_hu[0] <= lo and hi <= prior.median_hu[1]
    assert prior.side is None  # midline or spread over both sides
    assert 0 < prior.volume_ml[0] < prior.volume_ml[1]


# --- appearance draws ----------------------------------------------------------------------------


def site(organ: str, size: str, median_hu: float) -> TumorSite:
    profile = get_profile(organ)
    stats = ParenchymaStats(median_hu, 10.0, median_hu - 20, median_hu + 20, 0.0, 5000)
    radii = (20.0, 14.0, 14.0) if organ in TUBES else (10.0, 9.0, 8.0)  # (L/2, R+g, R+g)
    shape = ShapeSpec(center_vox=(30.0, 30.0, 20.0), radii_mm=radii)
    return TumorSite(organ, size, profile, stats, shape, (1.0, 1.0, 2.0))


def draws(organ: str, median_hu: float, n: int = 60) -> list[dict[str, object]]:
    gen, rng = HeuristicGenerator(), np.random.default_rng(7)
    return [gen.draw(site(organ, size, median_hu), rng) for size in SIZE_CLASSES for _ in range(n)]


@pytest.mark.parametrize(("organ", "median_hu"), [("colon", 45.0), ("esophagus", 70.0)])
def test_wall_tumors_enhance_like_soft_tissue_in_the_portal_phase(
    organ: str, median_hu: float
) -> None:
    specs = draws(organ, median_hu)
    target = np.array([float(s["target_hu"]) for s in specs])
    assert all(s["kind"] == "solid" for s in specs)  # no cysts
    assert target.min() >= 40.0 and target.max() <= 100.0
    necrotic = np.mean([float(s["necrosis_fraction"]) > 0 for s in specs])
    assert necrotic < 0.15  # a little, in medium and large ones only


def test_colon_tumor_on_a_plain_scan_reads_as_unenhanced_soft_tissue() -> None:
    # 31 HU: the colon median measured on the plain TotalSegmentator example
    target = np.array([float(s["target_hu"]) for s in draws("colon", 31.0)])
    assert 25.0 <= target.min() and target.max() <= 50.0


@pytest.mark.parametrize("median_hu", [110.0, 45.0])
def test_uterine_tumors_are_darker_than_the_myometrium(median_hu: float) -> None:
    specs = draws("uterus", median_hu)
    target = np.array([float(s["target_hu"]) for s in specs])
    assert target.max() < median_hu - 10.0
    if median_hu == 110.0:  # portal venous phase: 30-70 HU darker
        assert target.min() >= median_hu - 70.0 and target.max() <= median_hu - 30.0


# --- the analysis of a hollow organ --------------------------------------------------------------


def hollow_tube(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tube along k: a 4 mm soft-tissue wall (45 HU) around air (-1000 HU) with a pool of
    dense oral contrast (600 HU), in fat (-100 HU); noise 10 HU; 1 mm voxels. The mask is
    wall and lumen, as TotalSegmentator's colon."""
    rng = np.random.default_rng(seed)
    i, j = np.indices((56, 56), dtype=np.float32)
    rho = np.hypot(i - 28, j - 28)[:, :, None] * np.ones((1, 1, 40), np.float32)
    image = np.where(rho < 15, 45.0, -100.0)
    image = np.where(rho < 11, -1000.0, image)
    image[(rho < 11) & (i[:, :, None] > 34)] = 600.0  # contrast settles in the lumen
    image += rng.normal(0, 10, image.shape)
    return image.astype(np.int16), rho < 15


def test_tissue_range_measures_the_wall_not_the_lumen() -> None:
    image, mask = hollow_tube()
    colon = get_profile("colon")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the wall's median is in the expected range
        ctx = OrganContext.build(image, mask, (1.0, 1.0, 1.0), colon)
    assert ctx.parenchyma.median_hu == pytest.approx(45.0, abs=3.0)
    assert 6.0 < ctx.parenchyma.noise_hu < 14.0  # the scan's 10 HU, not the wall's edges
    assert 20.0 <= ctx.parenchyma.p05_hu and ctx.parenchyma.p95_hu <= 80.0
    # neither the air nor the contrast is an obstacle: the lumen is where wall tumors grow
    assert ctx.parenchyma.vessel_fraction == 0.0
    assert np.isinf(ctx.clearance_mm).all()
    # without the tissue range the same mask reads as air, with air and contrast as obstacles
    with pytest.warns(UserWarning, match="outside the expected"):
        plain = OrganContext.build(image, mask, (1.0, 1.0, 1.0), replace(colon, tissue_hu=None))
    assert plain.parenchyma.median_hu < -500.0
    assert plain.parenchyma.noise_hu > 2 * ctx.parenchyma.noise_hu
    assert not np.isinf(plain.clearance_mm).all()


def test_a_wall_the_coarse_grid_misses_is_measured_on_the_full_grid() -> None:
    """A 0.5 mm wall at 0.5 mm spacing: the analysis grid (every 3rd voxel) holds under 20 of
    its voxels, so the median comes from every voxel of the wall."""
    rng = np.random.default_rng(3)
    i, j = np.indices((24, 24), dtype=np.float32)
    rho = np.hypot(i - 12, j - 12)[:, :, None] * np.ones((1, 1, 9), np.float32)
    mask = rho < 8
    image = np.where(rho < 7, -1000.0, 45.0) + rng.normal(0, 10, rho.shape)
    image = np.where(mask, image, -100.0).astype(np.int16)
    colon = get_profile("colon")
    tissue = mask & (image >= colon.tissue_hu[0]) & (image <= colon.tissue_hu[1])
    box = tuple(slice(a.min(), a.max() + 1) for a in np.nonzero(mask))
    coarse = tuple(slice(b.start, b.stop, 3) for b in box)
    assert 0 < tissue[coarse].sum() < 20 < tissue.sum()  # the fallback's case
    ctx = OrganContext.build(image, mask, (0.5, 0.5, 0.5), colon)
    assert ctx.parenchyma.median_hu == float(np.median(image[tissue].astype(np.float32)))
    assert ctx.parenchyma.median_hu == pytest.approx(45.0, abs=3.0)


def test_a_tube_mask_without_tissue_warns_instead_of_failing() -> None:
    image, mask = hollow_tube()
    image = np.where(mask, np.int16(-1000), image)  # nothing but air in the mask
    with pytest.warns(UserWarning, match="colon parenchyma median .* outside the expected"):
        ctx = OrganContext.build(image, mask, (1.0, 1.0, 1.0), get_profile("colon"))
    assert ctx.parenchyma.median_hu < -900.0


# --- label maps ----------------------------------------------------------------------------------


def test_output_ids_of_the_new_organs_follow_the_old_ones() -> None:
    for offset, organ in enumerate(NEW):
        assert OUTPUT_LABELS.id_of(organ) == 7 + 2 * offset
        assert OUTPUT_LABELS.id_of(f"{organ}_tumor") == 8 + 2 * offset
    assert PRESETS["abdomenatlas"].organ_ids("spleen") == (13,)
    phantom = PRESETS["phantom"]
    assert [phantom.organ_ids(o) for o in NEW] == [(10,), (11,), (12,)]
    assert phantom.organ_ids("spleen") == (7,) and phantom.organ_ids("bone") == (9,)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_gives_each_voxel_one_meaning(name: str) -> None:
    preset = PRESETS[name]
    check_shared_ids({**preset.organs, **preset.tumors}, name)  # raises on a shared id
    assert resolve_label_map(preset.to_json()) == preset


def test_totalsegmentator_ids_of_the_tubes_and_no_uterus() -> None:
    ts = resolve_label_map("totalsegmentator")
    assert ts.organ_ids("esophagus") == (15,) and ts.organ_ids("colon") == (20,)
    with pytest.raises(InputError, match="has no organ 'uterus'"):
        ts.organ_ids("uterus")
    label = np.array([[[0, 15, 20, 5, 18]]], np.uint8)  # 18: small bowel, not ours
    out = to_output_labels(label, ts, OUTPUT_LABELS)
    assert out.tolist() == [[[0, 9, 7, 1, 0]]]


@pytest.mark.realdata
def test_the_totalsegmentator_example_label_20_is_the_colon() -> None:
    folder = require_data("totalseg_example")
    seg = nib.load(str(folder / "example_seg.nii.gz"))
    ct = nib.load(str(folder / "example_ct_sm.nii.gz"))
    label = np.asarray(seg.dataobj).astype(np.uint8)
    image = np.asarray(ct.dataobj)
    ts = PRESETS["totalsegmentator"]
    colon = label_mask(label, ts.organ_ids("colon"))
    volume_ml = colon.sum() * 27.0 / 1000.0  # 3 mm voxels
    assert 300.0 < volume_ml < 400.0  # 351 mL of colon in the 30-slice slab
    assert np.median(image[colon]) < -200  # its lumen is mostly air
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_label_map(label, ts, affine=seg.affine, image=image, organs=["liver", "colon"])
    assert not [w for w in caught if issubclass(w.category, LabelMapWarning)]
    ctx = OrganContext.build(image, colon, (3.0, 3.0, 3.0), get_profile("colon"))
    assert 20.0 <= ctx.parenchyma.median_hu <= 45.0  # the wall (31 HU), not the air
    assert 5.0 < ctx.parenchyma.noise_hu < 15.0  # the scan's noise (liver: 8.8 HU)


def _write_mask(path: Path, lo: int, hi: int) -> None:
    mask = np.zeros((10, 4, 3), np.uint8)
    mask[lo:hi] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(mask, np.diag([0.8, 0.8, 2.5, 1.0])), str(path))


def test_abdomenatlas_files_of_the_new_organs_are_read(tmp_path: Path) -> None:
    seg = tmp_path / "BDMAP_00000001" / "segmentations"
    files = {
        "colon": (0, 3),
        "colon_lesion": (1, 2),
        "esophagus": (3, 5),
        "esophagus_tumor": (4, 5),
        "uterus": (5, 8),
        "uterus_lesion": (6, 7),
        "spleen": (8, 9),
    }
    for stem, (lo, hi) in files.items():
        _write_mask(seg / f"{stem}.nii.gz", lo, hi)
    label = read_abdomenatlas_label(seg, PRESETS["abdomenatlas"])
    assert [int(label.array[i, 0, 0]) for i in range(10)] == [7, 8, 7, 9, 10, 11, 12, 11, 13, 0]
    assert set(label.meta["label_files"]) == set(files)
