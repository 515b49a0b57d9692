"""The learned tumor model: crop grid geometry, sampling determinism, checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch
from tiny import rehashed_edit, tiny_diffusion

from tumorsynth.errors import InputError
from tumorsynth.models.crop_grid import CropGrid, orientation_of
from tumorsynth.models.tumor_diffusion import (
    EARLY,
    LARGER,
    AutoencoderConfig,
    DenoiserConfig,
    TumorDiffusion,
    hu_to_unit,
    train_scheduler,
    unit_to_hu,
)


def masked_batch(n=2, size=16):
    rng = np.random.default_rng(0)
    crops = torch.from_numpy(rng.normal(100, 20, (n, 1, size, size, size)).astype(np.float32))
    masks = torch.zeros(n, 1, size, size, size)
    masks[:, :, 5:11, 5:11, 5:11] = 1.0
    return crops, masks


class TestCropGrid:
    def test_an_lps_scan_gives_the_same_crop_as_its_ras_twin(self):
        rng = np.random.default_rng(1)
        ras = rng.standard_normal((40, 30, 20)).astype(np.float32)
        lps = ras[::-1, ::-1].copy()
        spacing = (0.8, 0.8, 1.6)
        g_ras = CropGrid(
            (20.0, 15.0, 10.0),
            spacing,
            orientation_of(np.diag([0.8, 0.8, 1.6, 1])),
            (1.0, 1.0, 1.0),
            9,
        )
        g_lps = CropGrid(
            (19.0, 14.0, 10.0),
            spacing,
            orientation_of(np.diag([-0.8, -0.8, 1.6, 1])),
            (1.0, 1.0, 1.0),
            9,
        )
        a = g_ras.read(torch.from_numpy(ras))
        b = g_lps.read(torch.from_numpy(lps))
        assert a.shape == (1, 1, 9, 9, 9)
        assert torch.allclose(a, b, atol=1e-5)

    def test_same_spacing_reads_voxels_exactly_and_writes_them_back(self):
        vol = np.random.default_rng(2).standard_normal((30, 30, 30)).astype(np.float32)
        grid = CropGrid(
            (15.0, 15.0, 15.0), (1.0, 1.0, 2.0), orientation_of(None), (1.0, 1.0, 2.0), 7
        )
        crop = grid.read(torch.from_numpy(vol))[0, 0].numpy()
        assert np.allclose(crop, vol[12:19, 12:19, 12:19], atol=1e-5)
        back = grid.write_back(torch.from_numpy(crop), (13, 13, 13), (5, 5, 5)).numpy()
        assert np.allclose(back, vol[13:18, 13:18, 13:18], atol=1e-5)

    def test_a_coarser_grid_covers_more_millimetres(self):
        vol = torch.arange(40.0).reshape(40, 1, 1).expand(40, 5, 5).contiguous()
        fine = CropGrid((20.0, 2.0, 2.0), (1.0, 1.0, 1.0), orientation_of(None), (1.0,) * 3, 5)
        coarse = CropGrid((20.0, 2.0, 2.0), (1.0, 1.0, 1.0), orientation_of(None), (2.0,) * 3, 5)
        span = lambda g: float(g.read(vol)[0, 0, -1, 2, 2] - g.read(vol)[0, 0, 0, 2, 2])
        assert span(fine) == pytest.approx(4.0)
        assert span(coarse) == pytest.approx(8.0)


class TestConfigs:
    def test_window_round_trip(self):
        hu = torch.tensor([-500.0, -175.0, 40.0, 250.0, 900.0])
        back = unit_to_hu(hu_to_unit(hu, (-175, 250)), (-175, 250))
        assert torch.allclose(back, hu.clamp(-175, 250))

    def test_crop_must_fit_the_downsampling(self):
        with pytest.raises(InputError, match="divisible"):
            AutoencoderConfig(crop_size=30).validate("ae.yaml")

    def test_latent_must_fit_the_denoiser(self):
        with pytest.raises(InputError, match="latent grid"):
            DenoiserConfig(channels=(32, 64, 128)).validate(6, "d.yaml")


@pytest.mark.parametrize("steps", [20, 50, 200, 1000])
def test_the_last_training_step_is_nearly_pure_noise(steps):
    # Sampling starts from pure noise; a schedule that ends with signal left shifts every crop.
    schedule = train_scheduler(DenoiserConfig(num_train_timesteps=steps))
    assert float(schedule.alphas_cumprod[-1]) < 1e-3


class TestSampling:
    def test_same_generator_seed_same_tumor_other_seed_other_tumor(self):
        model = tiny_diffusion()
        crops, masks = masked_batch()
        run = lambda seeds: model.sample(
            crops,
            masks,
            [EARLY, LARGER],
            steps=3,
            generators=[torch.Generator().manual_seed(s) for s in seeds],
            host_hu=[100.0, 100.0],
        )
        a, b, c = run([1, 2]), run([1, 2]), run([1, 3])
        assert a.shape == crops.shape
        assert torch.equal(a, b)
        assert torch.allclose(a[0], c[0], atol=1e-4)  # same seed, other batch mate
        assert not torch.allclose(a[1], c[1])

    def test_a_tumor_does_not_depend_on_its_batch_mates(self):
        model = tiny_diffusion()
        crops, masks = masked_batch()
        both = model.sample(
            crops,
            masks,
            [EARLY, EARLY],
            steps=2,
            generators=[torch.Generator().manual_seed(s) for s in (5, 6)],
            host_hu=[100.0, 100.0],
        )
        alone = model.sample(
            crops[1:],
            masks[1:],
            [EARLY],
            steps=2,
            generators=[torch.Generator().manual_seed(6)],
            host_hu=[100.0],
        )
        assert torch.allclose(both[1], alone[0], atol=1e-3)

    def test_output_stays_in_the_window(self):
        model = tiny_diffusion()
        crops, masks = masked_batch(1)
        out = model.sample(
            crops, masks, [LARGER], steps=2, generators=torch.Generator(), host_hu=[100.0]
        )
        lo, hi = model.autoencoder_config.hu_window
        assert float(out.min()) >= lo and float(out.max()) <= hi

    def test_a_host_relative_model_follows_its_host(self):
        """The same tissue 40 HU darker with its host measured 40 HU darker: the sampled crop
        is the same, 40 HU darker (contrast relative to the host, not the training scan's HU)."""
        model = tiny_diffusion()
        crops, masks = masked_batch(1)
        gen = lambda: torch.Generator().manual_seed(4)
        bright = model.sample(crops, masks, [LARGER], steps=2, generators=gen(), host_hu=[100.0])
        dark = model.sample(
            crops - 40.0, masks, [LARGER], steps=2, generators=gen(), host_hu=[60.0]
        )
        lo, hi = model.autoencoder_config.hu_window
        inside = (bright > lo + 45) & (bright < hi - 5)  # away from the window's clipping
        assert inside.float().mean() > 0.9
        assert torch.allclose(dark[inside], bright[inside] - 40.0, atol=1e-3)
        with pytest.raises(InputError, match="relative to the host"):
            model.sample(crops, masks, [LARGER], steps=2, generators=gen())

    def test_the_mask_fill_is_what_the_autoencoder_sees_inside_the_mask(self, monkeypatch):
        model = tiny_diffusion()
        crops, masks = masked_batch(1)
        window = model.autoencoder_config.hu_window
        seen = []
        encode = model.autoencoder.encode_stage_2_inputs
        monkeypatch.setattr(
            model.autoencoder, "encode_stage_2_inputs", lambda x: seen.append(x) or encode(x)
        )
        x = hu_to_unit(crops, window)
        model.condition(x, masks)  # None: 0 on the unit scale, the middle of the window
        model.config = dataclasses.replace(model.config, mask_fill_hu=-175.0)
        model.condition(x, masks)
        inside, outside = masks.bool(), ~masks.bool()
        assert torch.all(seen[0][inside] == 0.0)
        assert torch.allclose(unit_to_hu(seen[1][inside], window), torch.tensor(-175.0))
        assert torch.equal(seen[0][outside], seen[1][outside])
        assert torch.equal(seen[1][outside], x[outside])

    def test_an_untrained_size_class_uses_the_nearest_trained_one(self):
        model = tiny_diffusion()
        model.trained = (LARGER,)
        assert model.size_label(EARLY) == LARGER
        assert model.size_label(LARGER) == LARGER


class TestCheckpoint:
    def test_round_trip_gives_the_same_samples(self, tmp_path):
        model = tiny_diffusion(seed=3)
        model.scale_factor = 0.7
        model.trained_enhancement = 0.85
        model.save_pretrained(tmp_path / "m")
        loaded = TumorDiffusion.from_pretrained(tmp_path / "m")
        assert loaded.scale_factor == pytest.approx(0.7)
        assert loaded.trained_enhancement == pytest.approx(0.85)
        assert loaded.sha256 and loaded.sha256 == model.sha256
        crops, masks = masked_batch(1)
        gen = lambda: torch.Generator().manual_seed(0)
        assert torch.equal(
            model.sample(crops, masks, [EARLY], steps=2, generators=gen(), host_hu=[90.0]),
            loaded.sample(crops, masks, [EARLY], steps=2, generators=gen(), host_hu=[90.0]),
        )
        for part in ("autoencoder", "denoiser"):
            assert (tmp_path / "m" / part / "model.safetensors").is_file()

    def test_a_checkpoint_from_before_host_relative_samples_as_it_did(self, tmp_path):
        """Denoiser configs written before host_relative, reference_hu, mask_fill_hu and
        trained_enhancement existed load as absolute-HU models with the 0 fill, and sample
        without a host."""
        model = tiny_diffusion(seed=2)
        model.config = dataclasses.replace(model.config, host_relative=False)
        model.save_pretrained(tmp_path / "m")

        def drop_new_settings(meta):
            for key in ("host_relative", "reference_hu", "mask_fill_hu"):
                del meta["config"]["denoiser"][key]
            del meta["config"]["trained_enhancement"]

        rehashed_edit(tmp_path / "m" / "denoiser", drop_new_settings)
        loaded = TumorDiffusion.from_pretrained(tmp_path / "m")
        assert not loaded.config.host_relative and loaded.config.mask_fill_hu is None
        assert loaded.trained_enhancement is None  # no phase: generators do not scale
        crops, masks = masked_batch(1)
        gen = lambda: torch.Generator().manual_seed(1)
        assert torch.equal(
            model.sample(crops, masks, [EARLY], steps=2, generators=gen()),
            loaded.sample(crops, masks, [EARLY], steps=2, generators=gen()),
        )

    def test_changed_weights_are_refused(self, tmp_path):
        tiny_diffusion().save_pretrained(tmp_path / "m")
        weights = tmp_path / "m" / "denoiser" / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        with pytest.raises(InputError, match="sha256"):
            TumorDiffusion.from_pretrained(tmp_path / "m")

    def test_a_mismatching_expectation_lists_what_differs(self, tmp_path):
        tiny_diffusion().save_pretrained(tmp_path / "m")
        with pytest.raises(InputError, match=r"num_train_timesteps: 50 in checkpoint != 1000"):
            TumorDiffusion.from_pretrained(tmp_path / "m", expect={"num_train_timesteps": 1000})

    def test_a_denoiser_from_another_autoencoder_is_named(self, tmp_path):
        tiny_diffusion().save_pretrained(tmp_path / "m")
        rehashed_edit(
            tmp_path / "m" / "denoiser",
            lambda m: m["config"]["autoencoder"].update(embedding_dim=8),
        )
        with pytest.raises(InputError, match="another autoencoder: embedding_dim"):
            TumorDiffusion.from_pretrained(tmp_path / "m")

    def test_weights_that_do_not_fit_name_the_tensors(self, tmp_path):
        tiny_diffusion().save_pretrained(tmp_path / "m")
        rehashed_edit(
            tmp_path / "m" / "denoiser", lambda m: m["config"]["denoiser"].update(channels=[16, 48])
        )
        with pytest.raises(InputError, match="weights do not fit"):
            TumorDiffusion.from_pretrained(tmp_path / "m")

    def test_a_missing_folder_says_what_to_pass(self, tmp_path):
        with pytest.raises(InputError, match="train-diffusion"):
            TumorDiffusion.from_pretrained(tmp_path / "nothing")
