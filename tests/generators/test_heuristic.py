import numpy as np
import pytest

from tumorsynth.generators import HeuristicAppearance, HeuristicGenerator, RenderInput
from tumorsynth.shapes import Box, ShapeSpec, render_shape

SPACING = (0.8, 0.8, 1.5)


def flat_tissue(hu=110.0, noise=15.0, seed=0, shape=(80, 80, 40)):
    rng = np.random.default_rng(seed)
    return (hu + rng.normal(0, noise, shape)).astype(np.float32)


def render(app: HeuristicAppearance, radius=9.0, image=None):
    image = flat_tissue() if image is None else image
    spec = ShapeSpec(center_vox=(40.0, 40.0, 20.0), radii_mm=(radius, radius, radius))
    box = Box((0, 0, 0), image.shape)
    field = render_shape(spec, SPACING, box)
    inputs = RenderInput(image, image, field, np.ones(image.shape, bool), SPACING, image)
    return HeuristicGenerator().render(app.to_dict(), inputs), field


def base(**kw):
    values = dict(
        kind="solid",
        parenchyma_hu=110.0,
        noise_hu=15.0,
        target_hu=80.0,
        edge_width_mm=0.8,
        texture_seed=1,
    )
    values.update(kw)
    return HeuristicAppearance(**values)


def test_tumor_mean_follows_the_requested_contrast():
    out, field = render(base(target_hu=80.0))
    inside = field.distance_mm < -2
    assert out[inside].mean() == pytest.approx(80.0, abs=3.0)
    far = field.distance_mm > 8
    assert out[far].mean() == pytest.approx(110.0, abs=1.5)


def test_more_contrast_darker_tumor():
    dim, field = render(base(target_hu=95.0))
    dark, _ = render(base(target_hu=60.0))
    inside = field.distance_mm < -2
    assert dark[inside].mean() < dim[inside].mean() - 25


def test_scan_noise_is_kept_inside_the_tumor():
    for noise in (8.0, 25.0):
        image = flat_tissue(noise=noise)
        out, field = render(base(noise_hu=noise), image=image)
        inside = field.distance_mm < -2
        resid = out - image
        # Inside, the tumor's noise is the scan's own (same voxels), only the mean moves.
        assert np.std(resid[inside]) < 0.35 * noise
        assert np.std(out[inside]) == pytest.approx(noise, rel=0.35)


def test_darker_centre_and_necrosis_make_the_core_darker():
    plain, field = render(base(), radius=14.0)
    necrotic, _ = render(
        base(centre_drop_hu=30.0, necrosis_fraction=0.5, necrosis_hu=20.0), radius=14.0
    )
    core = field.depth > 0.8
    rim = (field.depth > 0.05) & (field.depth < 0.3)
    assert necrotic[core].mean() < 40
    assert plain[core].mean() == pytest.approx(plain[rim].mean(), abs=6)
    assert necrotic[core].mean() < necrotic[rim].mean() - 30


def test_cyst_is_near_water_with_a_sharp_edge():
    cyst, field = render(base(kind="cyst", target_hu=10.0, edge_width_mm=0.3))
    solid, _ = render(base(target_hu=10.0, edge_width_mm=2.0))
    assert cyst[field.distance_mm < -2].mean() == pytest.approx(10.0, abs=3.0)
    shell = (field.distance_mm > 1.0) & (field.distance_mm < 2.0)
    assert cyst[shell].mean() > solid[shell].mean() + 15  # soft edge bleeds, sharp one does not


def test_foreign_tissue_under_the_tumor_does_not_show_through():
    image = flat_tissue()
    image[38:42, :, :] = -100.0  # a band of fat through the tumor site
    out, field = render(base(), image=image)
    inside = field.distance_mm < -1.5
    band = np.zeros(image.shape, bool)
    band[38:42] = True
    assert abs(out[inside & band].mean() - out[inside & ~band].mean()) < 8


def test_draw_respects_the_profile_ranges():
    from tumorsynth.generators import TumorSite
    from tumorsynth.organs import get_profile
    from tumorsynth.organs.context import ParenchymaStats

    stats = ParenchymaStats(100.0, 12.0, 80.0, 120.0, 0.0, 1000)
    shape = ShapeSpec(center_vox=(0.0, 0.0, 0.0), radii_mm=(8.0, 8.0, 8.0))
    gen = HeuristicGenerator()
    for organ in ("liver", "pancreas", "kidney"):
        rules = get_profile(organ).appearance
        site = TumorSite(organ, "large", get_profile(organ), stats, shape, (1.0, 1.0, 1.0))
        for seed in range(30):
            app = HeuristicAppearance.from_dict(gen.draw(site, np.random.default_rng(seed)))
            if app.kind == "cyst":
                assert rules.cyst_hu[0] <= app.target_hu <= rules.cyst_hu[1]
            else:
                phase = rules.enhancement(stats.median_hu)
                assert (
                    phase * rules.contrast_hu[0] <= app.contrast_hu <= phase * rules.contrast_hu[1]
                )
                assert rules.edge_width_mm[0] <= app.edge_width_mm <= rules.edge_width_mm[1]


def test_non_contrast_scan_gets_subtler_tumors():
    from tumorsynth.generators import TumorSite
    from tumorsynth.organs import get_profile
    from tumorsynth.organs.context import ParenchymaStats

    shape = ShapeSpec(center_vox=(0.0, 0.0, 0.0), radii_mm=(8.0, 8.0, 8.0))
    liver = get_profile("liver")

    def mean_contrast(parenchyma_hu):
        stats = ParenchymaStats(parenchyma_hu, 12.0, 0.0, 0.0, 0.0, 1000)
        site = TumorSite("liver", "small", liver, stats, shape, (1.0, 1.0, 1.0))
        return np.mean(
            [
                HeuristicAppearance.from_dict(
                    HeuristicGenerator().draw(site, np.random.default_rng(s))
                ).contrast_hu
                for s in range(40)
            ]
        )

    enhanced, plain = mean_contrast(115.0), mean_contrast(55.0)
    # Both negative: the non-contrast one is scaled towards zero by the lowest phase factor.
    assert plain == pytest.approx(0.45 * enhanced, rel=1e-6)
    assert -20 < plain < -5 and enhanced < -15
