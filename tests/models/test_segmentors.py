import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from tumorsynth.errors import InputError
from tumorsynth.models.checkpoint import save_pretrained
from tumorsynth.models.device import ddp_backend, pick_device
from tumorsynth.models.segmentors import (
    SegmentorConfig,
    build_segmentor,
    load_segmentor,
    nnunet_topology,
    resample_transforms,
    save_segmentor,
    window_transform,
)


def test_nnunet_topology_pools_isotropic_axes_down_to_4_voxels():
    kernels, strides = nnunet_topology((96, 96, 96), (1.5, 1.5, 1.5))
    assert strides[0] == [1, 1, 1]
    assert len(strides) == 5  # 96 -> 48 -> 24 -> 12 -> 6; 6 -> 3 would go below 4
    assert all(k == [3, 3, 3] for k in kernels)


def test_nnunet_topology_waits_on_a_coarse_axis():
    kernels, strides = nnunet_topology((160, 160, 32), (0.8, 0.8, 3.0))
    assert strides[1] == [2, 2, 1]  # z is coarser than twice x/y: not pooled yet
    assert kernels[0][2] == 1
    assert any(s[2] == 2 for s in strides[2:])


@pytest.mark.parametrize("backbone,patch", [("unet", 32), ("dynunet", 32), ("swinunetr", 64)])
def test_backbones_map_a_patch_to_class_logits(backbone, patch):
    config = SegmentorConfig(
        backbone=backbone, patch_size=(patch,) * 3, channels=(8, 16, 32, 64), feature_size=12
    )
    model = build_segmentor(config).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 1, patch, patch, patch))
    assert out.shape == (1, 3, patch, patch, patch)


def test_swinunetr_refuses_patches_not_divisible_by_32():
    with pytest.raises(ValueError, match="32"):
        build_segmentor(SegmentorConfig(backbone="swinunetr", patch_size=(40, 40, 40)))


def test_config_round_trip():
    config = SegmentorConfig(
        backbone="dynunet", patch_size=(64, 64, 32), spacing_mm=(0.8, 0.8, 2.0)
    )
    assert SegmentorConfig.from_dict(config.to_dict()) == config


def test_save_and_load_segmentor_round_trip_network_and_config(tmp_path):
    config = SegmentorConfig(patch_size=(32, 32, 32), channels=(8, 16, 32))
    model = build_segmentor(config)
    stored = {"model": config.to_dict(), "organ": "liver", "hu_window": [-100.0, 250.0]}
    save_segmentor(model, stored, tmp_path / "ck")
    loaded, again = load_segmentor(tmp_path / "ck", "cpu")
    assert SegmentorConfig.from_dict(again["model"]) == config and not loaded.training
    assert again["organ"] == "liver" and again["hu_window"] == [-100.0, 250.0]
    for (key, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key


def test_load_segmentor_refuses_another_kind_of_checkpoint(tmp_path):
    config = SegmentorConfig(patch_size=(32, 32, 32), channels=(8, 16, 32))
    save_pretrained(build_segmentor(config), {"model": config.to_dict()}, tmp_path / "ck", kind="x")
    with pytest.raises(InputError, match="segmentor"):
        load_segmentor(tmp_path / "ck")


def test_window_maps_the_hu_window_onto_0_to_1_and_clips():
    hu = torch.tensor([[[[-500.0, -100.0, 75.0, 250.0, 900.0]]]])
    out = window_transform((-100, 250))({"image": hu})["image"]
    assert torch.allclose(torch.as_tensor(out), torch.tensor([[[[0.0, 0.0, 0.5, 1.0, 1.0]]]]))


def test_resampling_goes_to_ras_at_the_spacing_and_inverts_onto_the_input_grid():
    affine = torch.diag(torch.tensor([-2.0, 1.0, 3.0, 1.0], dtype=torch.float64))
    image = MetaTensor(
        torch.arange(8 * 6 * 4, dtype=torch.float32).reshape(1, 8, 6, 4), affine=affine
    )
    spatial = Compose(resample_transforms((1.0, 1.0, 1.0)))
    out = spatial({"image": image})["image"]
    assert out.shape[1:] == (15, 6, 10)  # extents 7 x 2, 5 x 1, 3 x 3 mm at 1 mm (+1 voxel)
    assert np.allclose(np.diag(out.affine.numpy())[:3], 1.0)  # RAS, 1 mm
    back = spatial.inverse({"image": out})["image"]
    assert back.shape == image.shape and np.allclose(back.affine.numpy(), affine.numpy())


def test_label_resampling_keeps_label_values():
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    label = torch.zeros(1, 6, 6, 6)
    label[0, 2:4, 2:4, 2:4] = 7
    data = {
        "image": MetaTensor(label.clone(), affine=affine),
        "label": MetaTensor(label, affine=affine),
    }
    out = Compose(resample_transforms((1.0, 1.0, 1.0), label=True))(data)
    assert set(torch.unique(out["label"]).tolist()) == {0.0, 7.0}


def test_devices_and_their_ddp_backend():
    assert pick_device("cpu") == torch.device("cpu")
    assert ddp_backend(torch.device("cpu")) == "gloo"
    assert ddp_backend(torch.device("cuda", 0)) == "nccl"
    with pytest.raises(InputError, match="cuda"):
        pick_device("gpu0")
