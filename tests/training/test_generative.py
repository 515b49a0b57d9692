"""Training the learned generator on CPU with tiny configurations: the losses go down, the
outputs a user looks at are written, bad configs and data are refused with clear errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from tiny import TINY_AE, ae_settings, diffusion_settings

from tumorsynth._settings import load_config
from tumorsynth.errors import InputError
from tumorsynth.io.nifti import load_volume, save_volume
from tumorsynth.models.tumor_diffusion import EARLY, LARGER, TumorDiffusion
from tumorsynth.organs import get_profile
from tumorsynth.phantom import make_phantom
from tumorsynth.training.autoencoder import train_autoencoder
from tumorsynth.training.diffusion import train_diffusion
from tumorsynth.training.generative_config import AutoencoderTrainConfig, DiffusionTrainConfig
from tumorsynth.training.tumor_crops import (
    CropSampler,
    load_scan,
    load_tumor_scans,
    trained_enhancement,
)


@pytest.fixture(scope="module")
def scans(tmp_path_factory, tumor_phantom_case) -> tuple[list[Path], dict]:
    """Two healthy phantom CTs and one phantom with two synthetic liver tumors (as labels)."""
    root = tmp_path_factory.mktemp("generative")
    images = []
    for i in range(2):
        ct, _ = make_phantom(i, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
        images.append(save_volume(ct, root / f"ct{i}.nii.gz"))
    return images, tumor_phantom_case


@pytest.fixture(scope="module")
def trained_autoencoder(scans, tmp_path_factory):
    images, _ = scans
    out = tmp_path_factory.mktemp("ae")
    result = train_autoencoder(
        AutoencoderTrainConfig.from_dict(ae_settings(images, out)), progress=False
    )
    return result


def column(path, name):
    with open(path) as handle:
        return [float(r[name]) for r in csv.DictReader(handle) if r[name]]


class TestAutoencoder:
    def test_training_raises_held_out_reconstruction_psnr(self, trained_autoencoder):
        psnr = column(trained_autoencoder.out_dir / "metrics.csv", "val_psnr")
        assert len(psnr) == 6
        # 60 tiny steps on two phantoms: more than +1 dB, and the late scores beat the early ones.
        assert psnr[-1] > psnr[0] + 1.0
        assert min(psnr[-3:]) > max(psnr[:2])

    def test_writes_checkpoint_scores_and_picture(self, trained_autoencoder):
        out = trained_autoencoder.out_dir
        assert (out / "autoencoder" / "model.safetensors").is_file()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["steps"] == 60 and np.isfinite(summary["val_psnr_db"])
        assert summary["val_scans"] and -1.0 <= summary["val_ssim"] <= 1.0
        assert (out / "reconstructions.png").stat().st_size > 1000
        # The adversarial loss is on after adv_start.
        assert max(column(out / "metrics.csv", "adv")) > 0

    def test_unknown_settings_and_missing_images_are_named(self, tmp_path):
        with pytest.raises(InputError, match="unknown setting"):
            AutoencoderTrainConfig.from_dict({"data": {"images": ["x"]}, "model": {"chanels": 1}})
        path = tmp_path / "ae.yaml"
        path.write_text("data: {images: []}\n")
        with pytest.raises(InputError, match=r"ae.yaml.*data.images"):
            load_config(AutoencoderTrainConfig, path)
        config = AutoencoderTrainConfig.from_dict(ae_settings([tmp_path / "none"], tmp_path / "o"))
        with pytest.raises(InputError, match="none"):
            train_autoencoder(config, progress=False)
        assert not (tmp_path / "o").exists()


class TestDiffusion:
    @pytest.fixture(scope="class")
    def trained(self, scans, trained_autoencoder, tmp_path_factory):
        _, case = scans
        out = tmp_path_factory.mktemp("diffusion")
        settings = diffusion_settings(trained_autoencoder.out_dir / "autoencoder", case, out)
        return train_diffusion(DiffusionTrainConfig.from_dict(settings), progress=False)

    def test_training_lowers_the_validation_loss(self, trained):
        val = column(trained.out_dir / "metrics.csv", "val_loss")
        assert len(val) == 3
        assert val[-1] < val[0]

    def test_checkpoint_is_a_generator_and_records_what_it_learned(self, trained):
        model = TumorDiffusion.from_pretrained(trained.model_dir)
        assert trained.tumors_per_class == {"early": 0, "larger": 2}
        assert model.trained == (EARLY, LARGER)  # early: larger tumors zoomed out
        assert model.scale_factor > 0
        # the phantom liver's host HU, through the liver profile's enhancement
        assert model.trained_enhancement is not None and 0.45 <= model.trained_enhancement <= 1
        assert (trained.out_dir / "samples.png").stat().st_size > 1000
        summary = json.loads((trained.out_dir / "summary.json").read_text())
        assert summary["steps"] == 60

    def test_a_label_map_without_tumors_is_refused(self, scans, trained_autoencoder, tmp_path):
        _, case = scans
        organs_only = tmp_path / "organs_only.json"
        organs_only.write_text('{"liver": 1}')
        settings = diffusion_settings(
            trained_autoencoder.out_dir / "autoencoder",
            {**case, "label_map": str(organs_only)},
            tmp_path / "out",
        )
        with pytest.raises(InputError, match="names no tumors"):
            train_diffusion(DiffusionTrainConfig.from_dict(settings), progress=False)
        assert not (tmp_path / "out").exists()

    def test_a_config_without_autoencoder_is_refused(self):
        with pytest.raises(InputError, match="autoencoder"):
            DiffusionTrainConfig.from_dict({"data": {"cases": ["x"], "label_map": "msd"}})


class TestCrops:
    def test_tumor_crops_hold_their_tumor_near_the_centre(self, scans):
        _, case = scans
        scan_list = load_tumor_scans([case], "tumorsynth", ["liver"])
        from tumorsynth.models.tumor_diffusion import AutoencoderConfig

        sampler = CropSampler(
            scan_list,
            AutoencoderConfig(**{**TINY_AE, "channels": (8, 16), "spacing_mm": (4.0, 4.0, 4.0)}),
            np.random.default_rng(0),
            jitter=0.1,
        )
        crops, masks, classes = sampler.tumor_crops(4)
        assert crops.shape == masks.shape == (4, 1, 16, 16, 16)
        assert all(m[0, 6:10, 6:10, 6:10].sum() > 0 for m in masks)
        # The crop reads the tumor's own voxels: under its mask, the scan's tumor HU.
        image = load_volume(case["image"]).array
        tumor_hu = float(image[load_volume(case["label"], role="label").array == 2].mean())
        for crop, mask in zip(crops, masks):
            assert abs(float(crop[mask > 0].mean()) - tumor_hu) < 30.0

    def test_host_relative_crops_and_early_tumors_derived_from_larger_ones(self, scans):
        """Each tumor's host is measured (labelled tissue 3-10 mm around it); host-relative
        crops put it at the reference HU; zoomed-out crops make the larger tumors early-sized."""
        _, case = scans
        scan_list = load_tumor_scans([case], "tumorsynth", ["liver"])
        from tumorsynth.models.tumor_diffusion import AutoencoderConfig, size_class_of

        image = load_volume(case["image"]).array
        label = load_volume(case["label"], role="label").array
        liver_hu = float(np.median(image[label == 1]))
        for tumor in scan_list[0].tumors:
            assert abs(tumor.host_hu - liver_hu) < 25.0
            assert size_class_of(tumor.diameter_mm) == LARGER
            assert tumor.organ == "liver"
        hosts_hu = [t.host_hu for t in scan_list[0].tumors]
        expected = np.median([get_profile("liver").appearance.enhancement(h) for h in hosts_hu])
        assert trained_enhancement(scan_list) == pytest.approx(expected, abs=1e-4)
        model = AutoencoderConfig(**{**TINY_AE, "channels": (8, 16), "spacing_mm": (4.0,) * 3})
        plain = CropSampler(scan_list, model, np.random.default_rng(0), jitter=0.0)
        shifted = CropSampler(
            scan_list, model, np.random.default_rng(0), jitter=0.0, host_reference_hu=40.0
        )
        (a, _, _), (b, _, _) = plain.tumor_crops(2), shifted.tumor_crops(2)
        hosts = {round(t.host_hu, 3) for t in scan_list[0].tumors}
        assert any(
            torch.allclose(b[i], a[i] + 40.0 - h, atol=1e-3) for i in range(2) for h in hosts
        )
        early = CropSampler(scan_list, model, np.random.default_rng(1), early_from_larger=1.0)
        crops, masks, classes = early.tumor_crops(6)
        assert classes == [EARLY] * 6
        voxel_mm3 = 4.0**3
        for mask in masks:  # the tumor on the crop's grid is early-stage sized (< 20 mm)
            diameter = (6 * float(mask.sum()) * voxel_mm3 / np.pi) ** (1 / 3)
            assert 4.0 < diameter < 24.0

    def test_a_label_without_its_map_is_refused(self, tumor_phantom_case):
        # No default map here either (it read the label as MSD before).
        with pytest.raises(InputError, match="no default"):
            load_scan(tumor_phantom_case["image"], label=tumor_phantom_case["label"])

    def test_real_tumors_of_ircad_1_17(self, p17):
        ct, seg = p17
        scan = load_scan(ct.path, label=seg.path, label_map="msd", organs=["liver"])
        diameters = sorted(t.diameter_mm for t in scan.tumors)
        # 78.6 and 85.6 mL (the data README), here from the voxels: scipy's 26-connected
        # components, voxel volume from the affine, the diameter of the sphere of that volume.
        components, n = ndi.label(seg.array == 2, structure=np.ones((3, 3, 3), bool))
        voxel_mm3 = abs(np.linalg.det(seg.affine[:3, :3]))
        volumes = [np.count_nonzero(components == i) * voxel_mm3 for i in range(1, n + 1)]
        counted = sorted((6.0 * v / np.pi) ** (1.0 / 3.0) for v in volumes)
        assert len(diameters) == n == 2
        assert diameters == pytest.approx(counted, rel=1e-9)
        # hosts about 104 HU: a portal-venous liver (the profile: 55 HU plain, 110 enhanced)
        assert all(t.organ == "liver" and 95 < t.host_hu < 115 for t in scan.tumors)
        assert 0.7 < (trained_enhancement([scan]) or 0) < 1.0


@pytest.mark.slow
def test_a_segmentor_trains_on_diffusion_tumors(phantom_dataset, diffusion_checkpoint, tmp_path):
    from tiny import tiny_config

    from tumorsynth.training.config import TrainConfig
    from tumorsynth.training.segmentation import train_segmentation

    settings = tiny_config(
        phantom_dataset,
        tmp_path / "run",
        generator="diffusion",
        generator_options={"checkpoint": str(diffusion_checkpoint)},
        tumor_size="small",
    )
    result = train_segmentation(TrainConfig.from_dict(settings), progress=False)
    assert result.steps == 8
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").is_file()
