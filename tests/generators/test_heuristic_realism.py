"""Heuristic generator 1.1: fine grain, depth profile, halos, versions, and realism on IRCAD 1.17."""

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi
from shared_data import require_data

from tumorsynth.errors import InputError
from tumorsynth.generators import HeuristicAppearance, HeuristicGenerator, RenderInput, TumorSite
from tumorsynth.generators.heuristic import grain_ratio
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import ParenchymaStats, robust_std
from tumorsynth.pipelines import replay_case, synthesize_case
from tumorsynth.shapes import Box, ShapeSpec, render_shape

SPACING = (0.8, 0.8, 1.5)
NOISE_HU = 15.0


def flat_tissue(hu=110.0, noise=NOISE_HU, seed=0, shape=(80, 80, 40)):
    rng = np.random.default_rng(seed)
    return (hu + rng.normal(0, noise, shape)).astype(np.float32)


def render(app: HeuristicAppearance, radius=12.0, image=None):
    image = flat_tissue() if image is None else image
    spec = ShapeSpec(center_vox=(40.0, 40.0, 20.0), radii_mm=(radius, radius, radius))
    field = render_shape(spec, SPACING, Box((0, 0, 0), image.shape))
    inputs = RenderInput(image, image, field, np.ones(image.shape, bool), SPACING, image)
    return HeuristicGenerator().render(app.to_dict(), inputs), field


def solid(**kw):
    values = dict(
        kind="solid",
        parenchyma_hu=110.0,
        noise_hu=NOISE_HU,
        target_hu=80.0,
        edge_width_mm=0.8,
        texture_seed=1,
    )
    values.update(kw)
    return HeuristicAppearance(**values)


def fine_noise(image, support, spacing, where=None):
    """Robust std on ``where`` (default: all of ``support``) of the 2 mm high-pass, the low-pass
    taken within ``support`` only (normalized convolution, so an edge does not leak in)."""
    sigma = [2.0 / s for s in spacing]
    weight = support.astype(np.float32)
    low = ndi.gaussian_filter(image * weight, sigma) / np.maximum(
        ndi.gaussian_filter(weight, sigma), 1e-6
    )
    return robust_std((image - low)[support if where is None else where])


def test_grain_ratio_is_the_quadrature_complement_of_the_noise_ratio():
    assert grain_ratio(1.0) == 0.0 and grain_ratio(0.8) == 0.0
    for ratio in (1.1, 1.3, 1.7):
        assert np.hypot(1.0, grain_ratio(ratio)) == pytest.approx(ratio)


@pytest.mark.parametrize("ratio", [1.2, 1.5])
def test_grain_makes_the_interior_noisier_than_the_host_by_the_asked_ratio(ratio):
    out, field = render(solid(grain_ratio=grain_ratio(ratio)))
    inside = field.distance_mm < -2
    host = field.distance_mm > 3
    measured = fine_noise(out, inside, SPACING) / fine_noise(out, host, SPACING)
    assert measured == pytest.approx(ratio, rel=0.12)
    # Without grain the interior keeps the host's noise (the 1.0 behaviour).
    plain, _ = render(solid())
    assert fine_noise(plain, inside, SPACING) / fine_noise(plain, host, SPACING) == pytest.approx(
        1.0, abs=0.1
    )


def test_grain_does_not_move_the_tumor_mean_or_touch_the_outside():
    plain, field = render(solid())
    grainy, _ = render(solid(grain_ratio=1.0))
    inside = field.distance_mm < -2
    assert grainy[inside].mean() == pytest.approx(plain[inside].mean(), abs=1.0)
    assert np.array_equal(grainy[field.distance_mm > 6], plain[field.distance_mm > 6])


def test_a_version_1_0_spec_parses_and_renders_as_the_defaults():
    old = solid(centre_drop_hu=30.0).to_dict()
    del old["grain_ratio"], old["centre_power"]
    app = HeuristicAppearance.from_dict(old)
    assert app.grain_ratio == 0.0 and app.centre_power == 1.5
    a, _ = render(app)
    b, _ = render(solid(centre_drop_hu=30.0, grain_ratio=0.0, centre_power=1.5))
    assert np.array_equal(a, b)


def test_a_linear_depth_profile_darkens_the_outer_tumor_more():
    steep, field = render(solid(centre_drop_hu=40.0, centre_power=1.5), radius=15.0)
    linear, _ = render(solid(centre_drop_hu=40.0, centre_power=1.0), radius=15.0)
    middle = (field.depth > 0.2) & (field.depth < 0.5)
    centre = field.depth > 0.9
    assert linear[middle].mean() < steep[middle].mean() - 5
    assert linear[centre].mean() == pytest.approx(steep[centre].mean(), abs=4)


def test_a_negative_rim_is_a_hypodense_halo():
    halo, field = render(solid(rim_hu=-25.0, rim_width_mm=2.0), radius=15.0)
    plain, _ = render(solid(), radius=15.0)
    rim = (field.distance_mm > -1.5) & (field.distance_mm < -0.3)
    deep = field.distance_mm < -5
    assert halo[rim].mean() < plain[rim].mean() - 8
    assert halo[deep].mean() == pytest.approx(plain[deep].mean(), abs=1.0)


def test_draw_gives_each_organ_its_noise_ratio_and_cysts_no_grain():
    stats = ParenchymaStats(105.0, 14.0, 80.0, 120.0, 0.0, 1000)
    shape = ShapeSpec(center_vox=(0.0, 0.0, 0.0), radii_mm=(14.0, 14.0, 14.0))
    for organ in ("liver", "kidney", "pancreas"):
        profile = get_profile(organ)
        rules = profile.appearance
        site = TumorSite(organ, "medium", profile, stats, shape, (1.0, 1.0, 1.0))
        for seed in range(25):
            app = HeuristicAppearance.from_dict(
                HeuristicGenerator().draw(site, np.random.default_rng(seed))
            )
            if app.kind == "cyst":
                assert app.grain_ratio == 0.0
                continue
            ratio = np.hypot(1.0, app.grain_ratio)
            assert rules.noise_ratio[0] - 1e-9 <= ratio <= rules.noise_ratio[1] + 1e-9
            assert rules.centre_power[0] <= app.centre_power <= rules.centre_power[1]


def test_pancreas_margins_stay_softer_than_liver_and_kidney_margins():
    widths = {o: get_profile(o).appearance.edge_width_mm for o in ("liver", "kidney", "pancreas")}
    assert widths["pancreas"][0] >= widths["liver"][0]
    assert np.mean(widths["pancreas"]) > np.mean(widths["liver"]) > np.mean(widths["kidney"])


# -- versions and replay --------------------------------------------------------------------------
def phantom():
    shape = (64, 64, 40)
    grid = np.indices(shape).astype(np.float32)
    centre = np.array([32, 32, 20], np.float32)[:, None, None, None]
    r = np.sqrt((((grid - centre) * np.array([1.0, 1.0, 2.0])[:, None, None, None]) ** 2).sum(0))
    label = (r < 28).astype(np.uint8)
    image = flat_tissue(shape=shape, noise=12.0).astype(np.int16)
    image[label == 0] = -100
    return image, label


def test_a_1_1_record_replays_voxel_for_voxel_and_a_1_0_record_is_refused():
    image, label = phantom()
    kw = dict(spacing_mm=(1.0, 1.0, 2.0), label_map={"liver": 1})
    out = synthesize_case(image, label, organ="liver", count=2, size="small", rng=7, **kw)
    assert {r.generator_version for r in out.records} == {"1.1"}
    again = replay_case(image, label, out.records, **kw)
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)
    old = [r.__class__.from_dict({**r.to_dict(), "generator_version": "1.0"}) for r in out.records]
    with pytest.raises(InputError, match=r"heuristic 1\.0, this is 1\.1.*synthesize the tumor"):
        replay_case(image, label, old, **kw)


# -- realism on the real scan ---------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.slow
def test_host_matched_tumors_in_ircad_1_17_are_noisier_than_their_host_with_real_contrast():
    """IRCAD 1.17: medium tumors inserted beside the two real ones (which measure noise ratio
    0.9 / 1.2, contrast -38 / -16 HU, CNR 2.1 / 1.1 by the same definitions)."""
    import edt

    from tumorsynth.io import load_image, load_label

    folder = require_data("ircadb01_p17")
    ct = load_image(folder / "ircadb01_p17_ct.nii.gz")
    seg = load_label(folder / "ircadb01_p17_label.nii.gz")
    spacing = tuple(float(s) for s in ct.spacing_mm)
    out = synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=spacing,
        label_map={"liver": [1], "liver_tumor": [2]},
        organ="liver",
        count=1,
        size="medium",
        rng=3,
    )
    synthetic = (out.label == 2) & (seg.array != 2)
    assert not (synthetic & (seg.array == 2)).any()
    comps = cc3d.connected_components(synthetic, connectivity=26)
    tumor = comps == np.argmax(np.bincount(comps.ravel())[1:]) + 1
    box = Box.of_mask(tumor, margin=(20, 20, 10)).slices
    img, tum, liver = out.image[box].astype(np.float32), tumor[box], (out.label == 1)[box]
    inside = edt.edt(tum, anisotropy=spacing)
    outside = edt.edt(~tum, anisotropy=spacing)
    interior = tum & (inside > 2)
    shell = liver & (outside > 3) & (outside <= 10)
    host_noise = fine_noise(img, liver, spacing, shell)
    ratio = fine_noise(img, tum, spacing, interior) / host_noise
    assert 1.05 < ratio < 1.8
    contrast = float(img[tum].mean() - img[shell].mean())
    assert -60 < contrast < -8
    assert 0.5 < abs(contrast) / host_noise < 4.0
