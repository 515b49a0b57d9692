"""The diffusion generator inside the synthesis pipeline: locality, determinism, replay, batching,
cross-organ use, and its use from RandTumorSynthd (tiny untrained checkpoints, CPU)."""

import numpy as np
import pytest
from tiny import one_tumor_in_p07, replay_phantom, synthesize_phantom, tiny_diffusion

from tumorsynth.errors import InputError
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.generators.diffusion import DiffusionGenerator
from tumorsynth.models.tumor_diffusion import EARLY, LARGER
from tumorsynth.organs import get_profile
from tumorsynth.pipelines.synthesize import (
    TumorRequest,
    TumorSpec,
    render_specs,
    synthesize_case,
)


@pytest.fixture(scope="module")
def gen(diffusion_checkpoint):
    return DiffusionGenerator(diffusion_checkpoint, device="cpu")


def test_it_is_a_generator_with_a_versioned_checkpoint(gen):
    assert isinstance(gen, TumorGenerator)
    assert gen.version.startswith("1.3+") and len(gen.version) == 16


def sampled_classes(gen, monkeypatch):
    """The (size classes, steps) of every network call ``gen`` makes."""
    calls = []
    original = gen.model.sample

    def spy(crops, masks, size_classes, *, steps=None, **kw):
        calls.append((list(size_classes), steps))
        return original(crops, masks, size_classes, steps=steps, **kw)

    monkeypatch.setattr(gen.model, "sample", spy)
    return calls


@pytest.mark.parametrize(
    "organ, size, rng",
    [
        ("liver", "small", 0),
        ("liver", "medium", 1),
        ("liver", "mixed", 2),
        # tumor 1 measures 21.3 mm; its radii (2 * cbrt(abc)) said early
        ("pancreas", "medium", 2),
    ],
)
def test_early_or_larger_is_the_class_the_record_measures(
    phantom, gen, monkeypatch, organ, size, rng
):
    calls = sampled_classes(gen, monkeypatch)
    out = synthesize_phantom(phantom, gen, organ=organ, count=2, size=size, rng=rng)
    used = sorted(c for classes, _ in calls for c in classes)
    measured = sorted(EARLY if r.early_stage else LARGER for r in out.records)
    assert used == measured


def test_only_tumors_and_their_blend_margins_change(phantom, gen):
    ct, _ = phantom
    out = synthesize_phantom(phantom, gen, count=3)
    tumor = out.label == 2
    assert len(out.records) == 3 and tumor.any()
    changed = out.image != ct.array
    assert np.abs(out.image[tumor].astype(float) - ct.array[tumor]).mean() > 3.0
    # Every changed voxel is within the largest blend margin (4.5 edge std) of a tumor voxel.
    from scipy import ndimage as ndi

    edge = max(r.appearance["edge_width_mm"] for r in out.records)
    reach = ndi.distance_transform_edt(~tumor, sampling=ct.spacing_mm)
    assert reach[changed].max() <= 4.5 * edge + max(ct.spacing_mm)
    assert out.image.dtype == ct.array.dtype


def test_same_seed_same_voxels_and_replay_is_exact(phantom, gen):
    a, b = synthesize_phantom(phantom, gen, rng=4), synthesize_phantom(phantom, gen, rng=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    again = replay_phantom(phantom, a.records, gen)
    assert np.array_equal(again.image, a.image)
    assert np.array_equal(again.label, a.label)
    assert synthesize_phantom(phantom, gen, rng=5).image.tobytes() != a.image.tobytes()


def test_tumors_that_do_not_touch_are_one_batch_and_match_rendering_one_by_one(
    phantom, gen, diffusion_checkpoint
):
    ct, seg = phantom
    calls = []
    original = gen.render_batch

    def spy(specs, inputs):
        calls.append(len(specs))
        return original(specs, inputs)

    gen.render_batch = spy
    try:
        out = synthesize_case(
            ct.array,
            seg.array,
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            requests=[TumorRequest("liver", 1, "tiny"), TumorRequest("kidney", 1, "tiny")],
            generator=gen,
            rng=0,
            affine=ct.affine,
        )
    finally:
        del gen.render_batch
    assert calls == [2]
    one_by_one = DiffusionGenerator(diffusion_checkpoint, device="cpu", max_batch=1)
    alone = render_specs(
        ct.array,
        seg.array,
        [TumorSpec.from_record(r) for r in out.records],
        spacing_mm=ct.spacing_mm,
        label_map="phantom",
        affine=ct.affine,
        generators={"diffusion": one_by_one},
    )
    assert np.array_equal(alone.label, out.label)
    # Alone or in a batch differs only by floating point in the network (int16 rounding).
    assert np.abs(alone.image.astype(float) - out.image.astype(float)).max() <= 1.0


def test_the_tumor_contrast_follows_the_scan_phase(phantom, diffusion_checkpoint):
    """A checkpoint trained in hosts twice as enhanced as this scan's liver gives tumors half
    its deviation from the liver; one without a recorded phase is not scaled; replay is exact."""
    plain = DiffusionGenerator(diffusion_checkpoint, device="cpu", keep_scan_noise=False)
    assert plain.model.trained_enhancement is None
    unscaled = synthesize_phantom(phantom, plain, count=1, size="medium", rng=3)
    record = unscaled.records[0]
    assert record.appearance["contrast_scale"] == 1.0

    phased = DiffusionGenerator(diffusion_checkpoint, device="cpu", keep_scan_noise=False)
    liver = get_profile("liver").appearance.enhancement(record.appearance["parenchyma_hu"])
    phased.model.trained_enhancement = 2.0 * liver
    scaled = synthesize_phantom(phantom, phased, count=1, size="medium", rng=3)
    assert scaled.records[0].appearance["contrast_scale"] == pytest.approx(0.5, abs=1e-3)
    host = record.appearance["parenchyma_hu"]
    from scipy import ndimage as ndi

    # where the blend weight is 1: deeper than 4.5 edge std inside the tumor
    depth = ndi.distance_transform_edt(unscaled.label == 2, sampling=phantom[0].spacing_mm)
    core = depth > 4.5 * record.appearance["edge_width_mm"] + max(phantom[0].spacing_mm)
    assert core.sum() > 20
    deviation = unscaled.image[core].astype(float) - host
    assert np.abs(deviation).mean() > 5.0
    assert np.allclose(scaled.image[core] - host, 0.5 * deviation, atol=1.0)
    again = replay_phantom(phantom, scaled.records, phased)
    assert np.array_equal(again.image, scaled.image)


def test_a_liver_model_runs_in_the_kidney(phantom, gen):
    out = synthesize_phantom(phantom, gen, organ="kidney", count=1, size="small", rng=2)
    assert len(out.records) == 1 and (out.label == 6).any()


def test_large_tumors_zoom_the_model_grid_out(phantom, gen, monkeypatch):
    calls = sampled_classes(gen, monkeypatch)
    out = synthesize_phantom(phantom, gen, count=1, size="large", rng=1)
    assert out.records[0].appearance["zoom"] > 1.0
    assert calls == [([LARGER], gen.model.config.sample_steps[LARGER])]


def test_steps_option_overrides_the_checkpoint(diffusion_checkpoint, phantom):
    gen = get_generator("diffusion", checkpoint=diffusion_checkpoint, device="cpu", steps=1)
    out = synthesize_phantom(phantom, gen, count=1)
    assert out.records[0].appearance["steps"] == 1


def test_records_of_other_weights_are_refused(phantom, gen, tmp_path):
    out = synthesize_phantom(phantom, gen, count=1)
    tiny_diffusion(seed=9).save_pretrained(tmp_path / "other")
    other = DiffusionGenerator(tmp_path / "other", device="cpu")
    with pytest.raises(InputError, match="replay would not be exact"):
        replay_phantom(phantom, out.records, other)


def test_without_a_checkpoint_it_says_what_to_pass():
    with pytest.raises(InputError, match="--checkpoint"):
        get_generator("diffusion")


@pytest.mark.parametrize("name", ["diffusion", "adversarial"])
def test_rand_tumor_synthd_uses_the_learned_generators(phantom, generator_options, name):
    from tumorsynth.transforms import RandTumorSynthd

    ct, seg = phantom
    t = RandTumorSynthd(
        ("image", "label"),
        organ="liver",
        count=1,
        label_map="phantom",
        generator=name,
        generator_options=generator_options[name],
        records_key="records",
    ).set_random_state(0)
    out = t(
        {
            "image": ct.array[None].astype(np.float32),
            "label": seg.array[None],
            "image_meta_dict": {"affine": ct.affine},
        }
    )
    assert (out["label"] == 2).any()
    assert out["records"][0]["generator"] == name


def test_real_liver_and_kidney_of_ircad_1_7(p07, gen):
    for organ, tumor_id in (("liver", 2), ("kidney", 6)):
        out, reach_mm = one_tumor_in_p07(p07, gen, organ)
        tumor = out.label == tumor_id
        assert len(out.records) == 1 and tumor.any()
        assert reach_mm <= max(out.records[0].radii_mm) * 2.5 + 10.0
