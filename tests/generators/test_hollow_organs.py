"""Learned generators in the colon, esophagus and uterus: the lumen a wall tumor takes over
becomes tumor tissue (never air-dark inside the label), long wall tumors are rendered in windows
along the segment, and every record replays exactly (tiny untrained checkpoints, CPU)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from shared_data import require_module
from tiny import replay_phantom, synthesize_phantom, tiny_adversary, tiny_diffusion

from tumorsynth.generators.adversarial import AdversarialGenerator
from tumorsynth.generators.diffusion import DiffusionGenerator
from tumorsynth.generators.model_grid import (
    TISSUE_FLOOR_HU,
    cube_zoom,
    fill_lumen,
    window_seeds,
    window_weights,
)
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.synthesize import replay_case, synthesize_case
from tumorsynth.shapes import render_shape, shape_box
from tumorsynth.shapes.ellipsoid import ShapeSpec

COLON_TUMOR, ESOPHAGUS_TUMOR, UTERUS_TUMOR = 8, 10, 12  # output convention


@pytest.fixture(scope="module")
def generators():
    require_module("torch")
    return {
        "heuristic": "heuristic",
        "diffusion": DiffusionGenerator(tiny_diffusion(), device="cpu"),
        "adversarial": AdversarialGenerator(tiny_adversary(), device="cpu"),
    }


@pytest.fixture(scope="module")
def phantom4():
    """The phantom at 4 x 4 x 5 mm: an esophagus, a colon with air and fluid, a uterus."""
    return make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))


def colon_tumor(totalseg, generator, size="medium", rng=0):
    ct, seg = totalseg
    return synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map="totalsegmentator",
        organ="colon",
        count=1,
        size=size,
        generator=generator,
        rng=rng,
        affine=ct.affine,
    )


def signed_distance(record, spacing, shape):
    """The tumor's signed distance (mm) on the whole scan."""
    spec = ShapeSpec.from_dict(record.shape)
    box = shape_box(spec, spacing, shape, 0.0)
    distance = np.full(shape, np.inf, dtype=np.float32)
    distance[box.slices] = render_shape(spec, spacing, box).distance_mm
    return distance


@pytest.mark.parametrize("name", ["heuristic", "diffusion", "adversarial"])
@pytest.mark.parametrize("size, rng", [("small", 0), ("large", 1)])
def test_the_lumen_inside_a_colon_tumor_becomes_tumor_tissue(totalseg, generators, name, size, rng):
    """TotalSegmentator example's colon (air-filled): the tumor covers former lumen air, and
    where its blend weight is whole (deeper than the soft edge) those voxels read as tissue; at
    the edge facing the remaining lumen a voxel is at worst half air (partial volume)."""
    ct, _ = totalseg
    out = colon_tumor(totalseg, generators[name], size, rng)
    record = out.records[0]
    tumor = out.label == COLON_TUMOR
    was_air = tumor & (ct.array < -500)
    assert was_air.sum() > 50, "the tumor should have taken over lumen air"
    edge = record.appearance["edge_width_mm"]
    distance = signed_distance(record, ct.spacing_mm, ct.shape)
    whole = was_air & (distance < -(4.5 * edge + 0.5))  # blend weight above 0.99999
    assert whole.sum() > 10
    noise = record.appearance.get("noise_hu", 15.0)
    assert out.image[whole].min() > TISSUE_FLOOR_HU - 3.0 * noise - 10.0
    assert np.median(out.image[was_air]) > -60.0
    assert out.image[tumor].min() > -560  # half air, half tissue, plus noise at the worst
    if name != "heuristic":
        assert record.appearance["tissue_hu"] == [20.0, 250.0]
    again = replay_case(
        ct.array,
        totalseg[1].array,
        out.records,
        spacing_mm=ct.spacing_mm,
        label_map="totalsegmentator",
        affine=ct.affine,
        generators={name: generators[name]} if name != "heuristic" else None,
    )
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)


def test_the_adversary_sees_tissue_not_air_inside_the_tumor(totalseg, monkeypatch):
    """A model that changes the scan's own HU (bounded) would leave air air: the lumen inside
    the mask is filled with the host's HU before it reads the cube (32^3 at 2 mm here)."""
    gen = AdversarialGenerator(tiny_adversary(crop_size=32, spacing_mm=2.0), device="cpu")
    seen = []
    original = gen.model.sample

    def spy(crops, masks, hosts, noise):
        seen.append((crops.clone(), masks.clone(), list(hosts)))
        return original(crops, masks, hosts, noise)

    monkeypatch.setattr(gen.model, "sample", spy)
    out = colon_tumor(totalseg, gen, "medium", 2)
    ((crops, masks, hosts),) = seen
    inside = crops[masks > 0.5]
    assert inside.numel() > 100
    assert abs(float(inside.median()) - hosts[0]) < 20
    assert float((inside > -200).float().mean()) > 0.8  # the rest: trilinear at the mask's edge
    source = totalseg[0].array[out.label == COLON_TUMOR]
    assert (source < -500).mean() > 0.3  # it was largely air


def test_fill_lumen_replaces_only_what_is_not_tissue_inside_the_tumor():
    image = np.array([[-1000.0, 45.0, -1000.0, 900.0, -80.0]], dtype=np.float32)
    tumor = np.array([[True, True, False, True, True]])
    out = fill_lumen(image, tumor, (20.0, 250.0), 33.0)
    assert out.tolist() == [[33.0, 45.0, -1000.0, 33.0, 33.0]]
    assert image[0, 0] == -1000.0  # a copy
    same = fill_lumen(image, np.zeros_like(tumor), (20.0, 250.0), 33.0)
    assert same is image


def test_window_weights_are_whole_at_the_centre_and_none_at_the_faces():
    grid = CropGrid((10.0, 10.0, 10.0), (1.0, 1.0, 1.0), orientation_of(None), (1.0,) * 3, 9)
    weights = window_weights(grid, (0, 0, 0), (21, 21, 21))
    assert weights[10, 10, 10] == pytest.approx(1.0)
    assert weights[6, 10, 10] == 0.0 and weights[14, 10, 10] == 0.0  # the cube's faces
    assert weights[3, 10, 10] == 0.0  # beyond
    assert 0 < weights[8, 10, 10] < weights[9, 10, 10] < 1.0


def test_a_long_colon_tumor_is_rendered_in_windows_along_the_segment(phantom4, monkeypatch):
    """The phantom's colon, a large tumor and a 16^3 model at 4 mm: one cube would be zoomed
    out 2.5x; windows along the segment need less, each has its own seed and every tumor voxel
    lies inside a window; replay is exact."""
    gen = DiffusionGenerator(tiny_diffusion(), device="cpu")
    calls = []
    original = gen.model.sample

    def spy(crops, masks, classes, *, generators=None, **kw):
        calls.append((crops.shape[0], [g.initial_seed() for g in generators]))
        return original(crops, masks, classes, generators=generators, **kw)

    monkeypatch.setattr(gen.model, "sample", spy)
    out = synthesize_phantom(phantom4, gen, organ="colon", count=1, size="large", rng=0)
    record = out.records[0]
    spec = record.appearance
    windows = spec["windows_vox"]
    assert len(windows) >= 2
    shape = ShapeSpec.from_dict(record.shape)
    single = cube_zoom(SimpleNamespace(shape=shape), spec["edge_width_mm"], 16, (4.0,) * 3)
    assert spec["zoom"] * 1.2 <= single
    assert calls == [(len(windows), window_seeds(spec))]
    assert len(set(window_seeds(spec))) == len(windows)
    ct = phantom4[0]
    tumor = np.argwhere(out.label == COLON_TUMOR)
    origin, size = tumor.min(axis=0), np.ptp(tumor, axis=0) + 1
    covered = np.zeros(tuple(size), dtype=np.float32)
    for offset in windows:
        centre = tuple(float(c) for c in np.asarray(shape.center_vox) + np.asarray(offset))
        grid = CropGrid(
            centre, ct.spacing_mm, orientation_of(ct.affine), (4.0 * spec["zoom"],) * 3, 16
        )
        covered += window_weights(grid, tuple(origin), tuple(size))
    assert np.all(covered[tuple((tumor - origin).T)] > 0)
    again = replay_phantom(phantom4, out.records, gen)
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)


@pytest.mark.parametrize("name", ["diffusion", "adversarial"])
@pytest.mark.parametrize(
    "organ, size, label, hollow",
    [("esophagus", "tiny", ESOPHAGUS_TUMOR, True), ("uterus", "medium", UTERUS_TUMOR, False)],
)
def test_learned_generators_in_the_esophagus_and_uterus(
    phantom4, generators, name, organ, size, label, hollow
):
    gen = generators[name]
    ct, seg = phantom4
    out = synthesize_phantom(phantom4, gen, organ=organ, count=1, size=size, rng=3)
    (record,) = out.records
    assert record.organ == organ and record.generator == name and record.tumor_label == label
    tumor = out.label == label
    assert tumor.sum() == record.n_voxels > 0
    assert np.abs(out.image[tumor].astype(float) - ct.array[tumor]).mean() > 1.0
    assert ("tissue_hu" in record.appearance) == hollow  # the uterus is solid
    if hollow:
        assert record.shape.get("wall") is not None
    again = replay_phantom(phantom4, out.records, gen)
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)


def test_solid_organs_keep_their_specs(phantom4, generators):
    """Liver tumors: one cube, no tissue range (their records render as before)."""
    for name in ("diffusion", "adversarial"):
        out = synthesize_phantom(phantom4, generators[name], organ="liver", count=1, size="large")
        spec = out.records[0].appearance
        assert "windows_vox" not in spec and "tissue_hu" not in spec
        assert (
            torch.Generator().manual_seed(spec["noise_seed"]).initial_seed()
            == window_seeds(spec)[0]
        )


def test_adversarial_training_crops_read_hollow_organs_as_rendering_does(tmp_path):
    """Training crops of colon tumors: the lumen inside the drawn tumor is the host's HU (as the
    generator will see it); without the organ's tissue range it would be air."""
    from dataclasses import replace

    from tiny import write_phantom_dataset

    from tumorsynth.models.adversarial import AdversarialConfig
    from tumorsynth.organs import get_profile
    from tumorsynth.training.adversarial_data import HealthyCrops, load_healthy_scans

    scans = load_healthy_scans([str(write_phantom_dataset(tmp_path, 1))], "phantom", "colon")
    config = AdversarialConfig(crop_size=16, spacing_mm=(4.0,) * 3, channels=(4, 8))
    colon = get_profile("colon")
    shares = {}
    for name, profile in (("filled", colon), ("raw", replace(colon, tissue_hu=None))):
        crops, masks, _, hosts = HealthyCrops(
            scans, config, profile, "medium", np.random.default_rng(0)
        ).crops(3)
        inside = crops[masks > 0.5]
        shares[name] = float((inside > -200).float().mean())
        if name == "filled":
            assert abs(float(inside.median()) - hosts[0]) < 30
    assert shares["filled"] > 0.8 > shares["raw"]


def test_a_real_colon_tumor_s_host_is_its_wall_not_its_lumen(totalseg, tmp_path):
    """Diffusion training on annotated colon tumors: the host HU a crop is shifted by is the
    wall's (the organ's tissue range), not the median of a shell that is mostly lumen air."""
    from tumorsynth.io.nifti import Volume, save_volume
    from tumorsynth.training.tumor_crops import load_scan

    ct, _ = totalseg
    out = colon_tumor(totalseg, "heuristic", "medium", 0)
    image = save_volume(Volume(out.image, ct.affine), tmp_path / "ct.nii.gz")
    label = save_volume(Volume(out.label, ct.affine), tmp_path / "label.nii.gz")
    scan = load_scan(image, label=label, label_map="tumorsynth", organs=["colon"])
    (tumor,) = scan.tumors
    assert tumor.organ == "colon"
    assert 20.0 <= tumor.host_hu <= 120.0  # the wall, not the lumen around the tumor
    shell_median = np.median(out.image[(out.label == 7)])
    assert shell_median < -100  # the colon label is mostly lumen
