"""The adversarial (FreeTumor-class) generator through the generator seam: a bounded, smooth change
inside the mask only, determinism and exact replay, batches equal one-by-one rendering, pinned
checkpoint files, every organ (tiny untrained checkpoint, CPU; RandTumorSynthd: test_diffusion).
"""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from tiny import P07_MAP, one_tumor_in_p07, replay_phantom, synthesize_phantom, tiny_adversary

from tumorsynth.errors import InputError
from tumorsynth.generators import TumorGenerator, get_generator
from tumorsynth.generators.adversarial import AdversarialGenerator
from tumorsynth.models.adversarial import AdversarialConfig, TumorAdversary


@pytest.fixture(scope="module")
def gen(adversarial_checkpoint):
    return AdversarialGenerator(adversarial_checkpoint, device="cpu")


class TestModel:
    def test_the_change_is_bounded_smooth_and_zero_outside_the_mask(self):
        model = tiny_adversary(seed=1)
        crops = torch.full((2, 1, 16, 16, 16), 100.0)
        masks = torch.zeros_like(crops)
        masks[:, :, 4:12, 4:12, 4:12] = 1.0
        noise = model.noise(crops.shape, [torch.Generator().manual_seed(s) for s in (0, 1)])
        change = model.change(crops, masks, [100.0, 100.0], noise)
        assert change.abs().max() <= model.config.max_change_hu
        assert torch.all(change[masks == 0] == 0) and change[masks == 1].abs().mean() > 0
        assert not torch.equal(change[0], change[1])  # other noise, other tumor

    def test_a_host_shift_moves_the_input_not_the_change(self):
        """Relative to the host: the same tissue 40 HU darker, with its host 40 HU darker,
        gets the same change."""
        model = tiny_adversary(seed=2)
        g = torch.Generator().manual_seed(0)
        crops = 100.0 + 20.0 * torch.randn((1, 1, 16, 16, 16), generator=g)
        masks = torch.zeros_like(crops)
        masks[:, :, 5:11, 5:11, 5:11] = 1.0
        noise = model.noise(crops.shape, [torch.Generator().manual_seed(3)])
        a = model.change(crops, masks, [100.0], noise)
        b = model.change(crops - 40.0, masks, [60.0], noise)
        assert torch.allclose(a, b, atol=1e-4)

    def test_round_trip_and_bad_settings(self, tmp_path):
        model = tiny_adversary(seed=3)
        model.save_pretrained(tmp_path / "m")
        loaded = TumorAdversary.from_pretrained(tmp_path / "m")
        assert loaded.config == model.config and loaded.sha256 == model.sha256 != ""
        for (k, a), (_, b) in zip(
            model.net.state_dict().items(), loaded.net.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), k
        with pytest.raises(InputError, match="crop_size"):
            AdversarialConfig(crop_size=30, channels=(4, 8, 16)).validate("c.json")
        with pytest.raises(InputError, match="nothing there"):
            TumorAdversary.from_pretrained(tmp_path / "none")


def test_it_is_a_registered_generator_with_a_versioned_checkpoint(gen, adversarial_checkpoint):
    assert isinstance(gen, TumorGenerator)
    assert gen.version.startswith("1.0+") and len(gen.version) == 16
    assert isinstance(get_generator("adversarial", checkpoint=adversarial_checkpoint), type(gen))
    with pytest.raises(InputError, match="--checkpoint"):
        get_generator("adversarial")
    with pytest.raises(InputError, match="nothing there"):
        get_generator("adversarial", checkpoint=adversarial_checkpoint.parent / "none")


def test_only_tumors_and_their_blend_margins_change_and_replay_is_exact(phantom, gen):
    ct, _ = phantom
    out = synthesize_phantom(phantom, gen, count=3, size="small", rng=4)
    tumor = out.label == 2
    assert len(out.records) == 3 and tumor.any()
    assert np.abs(out.image[tumor].astype(float) - ct.array[tumor]).mean() > 2.0
    edge = max(r.appearance["edge_width_mm"] for r in out.records)
    reach = ndi.distance_transform_edt(~tumor, sampling=ct.spacing_mm)
    changed = out.image != ct.array
    assert reach[changed].max() <= 4.5 * edge + max(ct.spacing_mm)
    again = synthesize_phantom(phantom, gen, count=3, size="small", rng=4)
    assert np.array_equal(again.image, out.image)
    replayed = replay_phantom(phantom, out.records, gen)
    assert np.array_equal(replayed.image, out.image) and np.array_equal(replayed.label, out.label)


def test_batched_tumors_match_one_by_one(phantom, gen, adversarial_checkpoint):
    out = synthesize_phantom(phantom, gen, count=3, size="tiny", rng=5)
    one = AdversarialGenerator(adversarial_checkpoint, device="cpu", max_batch=1)
    alone = replay_phantom(phantom, out.records, one)
    assert np.abs(alone.image.astype(float) - out.image.astype(float)).max() <= 1.0


@pytest.mark.parametrize("organ, label", [("kidney", 6), ("pancreas", 4)])
def test_every_organ(phantom, gen, organ, label):
    out = synthesize_phantom(phantom, gen, organ=organ, count=1, size="small", rng=2)
    assert len(out.records) == 1 and (out.label == label).any()


def test_records_of_other_weights_are_refused(phantom, gen, tmp_path):
    out = synthesize_phantom(phantom, gen, count=1)
    tiny_adversary(seed=9).save_pretrained(tmp_path / "other")
    other = AdversarialGenerator(tmp_path / "other", device="cpu")
    with pytest.raises(InputError, match="replay would not be exact"):
        replay_phantom(phantom, out.records, other)


def test_real_liver_and_kidney_of_ircad_1_7_filtered_and_replayed(p07, gen, tmp_path):
    """On a real CT: one tumor per organ, changes only near it, the filter's verdict in the
    record (a judge that calls everything tumor), and replay without the filter."""
    from tiny import constant_segmentor

    from tumorsynth.pipelines.synthesize import replay_case
    from tumorsynth.pipelines.tumor_filter import TumorFilter

    ct, seg = p07
    judge = TumorFilter.load(constant_segmentor(tmp_path / "judge", 5.0), device="cpu")
    for organ, tumor_id in (("liver", 2), ("kidney", 6)):
        options = {"filters": [judge]} if organ == "liver" else {}
        out, reach_mm = one_tumor_in_p07(p07, gen, organ, **options)
        assert len(out.records) == 1 and (out.label == tumor_id).any()
        assert reach_mm <= max(out.records[0].radii_mm) * 2.5 + 10.0
        verdict = out.records[0].filter_verdict
        if options:
            assert (verdict["verdict"], verdict["attempts"]) == ("passed", 1)
        else:
            assert verdict is None
        again = replay_case(
            ct.array,
            seg.array,
            out.records,
            spacing_mm=ct.spacing_mm,
            label_map=P07_MAP,
            affine=ct.affine,
            generators={"adversarial": gen},
        )
        assert np.array_equal(again.image, out.image)
