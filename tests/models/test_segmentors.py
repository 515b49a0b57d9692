import pytest
import torch

from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor, nnunet_topology


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
