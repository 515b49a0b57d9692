"""Slab-wise prediction (issue 13) gives what MONAI's full-size path gives, up to float16 ties:
the same window placement and blending, the same resampling there and back, on grids that are
flipped, permuted, anisotropic and smaller than a patch; and ``--save-probabilities`` writes the
files the FROC evaluation reads."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import Compose
from tiny import constant_segmentor

from tumorsynth.errors import InputError
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.models.segmentors import (
    SegmentorConfig,
    build_segmentor,
    resample_transforms,
    window_transform,
)
from tumorsynth.pipelines.predict import Segmentor, predict_files
from tumorsynth.pipelines.predict_slabs import GridMap, resample_box, window_probabilities

CONFIG = {
    "organ": "liver",
    "spacing_mm": [2.0, 2.0, 2.0],
    "hu_window": [-100.0, 250.0],
    "patch_size": [16, 16, 16],
}


def random_unet(seed: int = 0) -> torch.nn.Module:
    """An untrained UNet whose logits vary voxel to voxel (seeded weights, eval mode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_segmentor(SegmentorConfig(patch_size=(16, 16, 16), channels=(4, 8)))
        for p in net.parameters():  # larger weights: logits far apart, few near-ties
            p.data.mul_(3.0)
    return net.eval()


def full_size_probabilities(model: torch.nn.Module, image: Volume) -> np.ndarray:
    """The reference: MONAI's transforms, sliding_window_inference and tracked inverse on whole
    float tensors (what predict did before issue 13), class probabilities on the input grid."""
    spatial = Compose(resample_transforms(CONFIG["spacing_mm"]))
    window = window_transform(CONFIG["hu_window"])
    tensor = MetaTensor(
        torch.as_tensor(image.array.astype(np.float32))[None],
        affine=torch.as_tensor(image.affine, dtype=torch.float64),
    )
    with torch.no_grad():
        prepared = spatial({"image": tensor})["image"]
        net_in = window({"image": prepared})["image"].as_tensor()[None]
        logits = sliding_window_inference(
            net_in, tuple(CONFIG["patch_size"]), 4, model, overlap=0.25, mode="gaussian"
        )
        probs = torch.softmax(logits.float(), dim=1)[0]  # type: ignore[union-attr]
        restored = spatial.inverse(
            {
                "image": MetaTensor(
                    probs, meta=prepared.meta, applied_operations=prepared.applied_operations
                )
            }
        )["image"]
    return restored.as_tensor().numpy()


def ct_volume(shape: tuple[int, int, int], affine: np.ndarray, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    g = (
        np.indices(shape).astype(np.float32)
        / np.array(shape, dtype=np.float32)[:, None, None, None]
    )
    blob = ((g - 0.5) ** 2).sum(0) < 0.12
    ct = np.where(blob, 120.0, -50.0) + rng.normal(0.0, 40.0, shape)
    return Volume(ct.astype(np.int16), affine)


GEOMETRIES = {
    # LPS, anisotropic, z coarser than the network: upsampled along z
    "lps": (
        (40, 36, 14),
        np.array([[-1.3, 0, 0, 5], [0, -1.1, 0, 9], [0, 0, 3.0, -4], [0, 0, 0, 1]]),
    ),
    # axes stored as (z, x, y) with a flip: permutation both ways
    "permuted": (
        (12, 30, 26),
        np.array([[0, 1.6, 0, -3], [0, 0, -1.4, 2], [2.5, 0, 0, 7], [0, 0, 0, 1.0]]),
    ),
    # thinner than a patch along y: the windows are padded as MONAI pads them
    "padded": (
        (34, 10, 30),
        np.array([[1.2, 0, 0, 0], [0, 2.4, 0, 0], [0, 0, 1.5, 0], [0, 0, 0, 1]]),
    ),
}


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_slabs_give_the_labels_of_the_full_size_path(geometry: str) -> None:
    shape, affine = GEOMETRIES[geometry]
    image = Volume(ct_volume(shape, affine).array, affine)
    model = random_unet()
    reference = full_size_probabilities(model, image)
    segmentor = Segmentor(model, CONFIG, torch.device("cpu"))
    # tiny slabs: several input chunks per network slab, several slabs back to the input grid
    out = segmentor.segment(image, probabilities=True, slab_voxels=700)
    lut = np.array([0, 1, 2], dtype=np.uint8)
    expected = lut[reference.argmax(0)]
    top2 = np.sort(reference, axis=0)[-2:]
    differ = out.labels != expected
    assert len(np.unique(expected)) == 3  # every class occurs: the comparison means something
    assert (top2[1] - top2[0])[differ].max(initial=0.0) < 1e-3
    assert differ.mean() < 0.01
    tumor = out.probabilities["liver_tumor"]
    assert tumor.dtype == np.uint8 and tumor.shape == shape
    assert np.abs(tumor.astype(int) - np.rint(255 * reference[2])).max() <= 1


def test_windows_blend_as_sliding_window_inference_does() -> None:
    """Rolling float32 buffer one patch deep == MONAI's full-size aggregation (then softmax)."""
    rng = np.random.default_rng(1)
    volume = torch.as_tensor(rng.random((30, 12, 41), dtype=np.float32))  # y padded, z: 4 starts
    model = random_unet(2)
    with torch.no_grad():
        expected = torch.softmax(
            sliding_window_inference(volume[None, None], (16, 16, 16), 3, model, mode="gaussian"),
            dim=1,
        )[0]
        got = window_probabilities(
            lambda z0, z1: volume[..., z0:z1], volume.shape, model, (16,) * 3
        )
    assert got.dtype == torch.float16 and got.shape == expected.shape
    assert torch.allclose(got.float(), expected, atol=5e-4, rtol=0)


def test_resampling_a_linear_ramp_is_exact_inside_and_flat_beyond_the_edge() -> None:
    ramp = torch.arange(10, dtype=torch.float32)[:, None, None].expand(10, 4, 3)[None]
    grid = GridMap(
        axes=(0, 1, 2), scale=(0.5, 1.0, 1.0), offset=(1.25, 0.0, 0.0), source_shape=(10, 4, 3)
    )
    out = resample_box(lambda box: ramp[(slice(None), *box)], grid, (range(20), range(4), range(3)))
    coords = np.clip(0.5 * np.arange(20) + 1.25, 0, 9)
    assert np.allclose(out[0, :, 2, 1].numpy(), coords)


def test_grids_that_are_not_axis_aligned_are_refused() -> None:
    rotated = np.eye(4)
    rotated[:2, :2] = [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]]
    with pytest.raises(RuntimeError, match="flips and scales"):
        GridMap.between(rotated, np.eye(4), (4, 4, 4))


def test_save_probabilities_writes_the_tumor_probability_beside_the_labels(tmp_path) -> None:
    checkpoint = constant_segmentor(tmp_path / "ckpt", tumor_bias=2.0)
    ct = ct_volume((30, 26, 12), np.diag([-4.0, -4.0, 5.0, 1.0]))
    save_volume(ct, tmp_path / "in" / "liver_0.nii.gz")
    out = tmp_path / "pred"
    predict_files(
        checkpoint, tmp_path / "in", out, device="cpu", save_probabilities=True, progress=False
    )
    labels = nib.load(out / "liver_0.nii.gz")
    prob = nib.load(out / "probabilities" / "liver_0_liver_tumor.nii.gz")
    assert prob.get_data_dtype() == np.uint8 and prob.shape == ct.shape
    assert np.array_equal(prob.affine, labels.affine)
    assert np.array_equal(prob.header.get_qform(), labels.header.get_qform())
    p = np.exp(2.0) / (2 + np.exp(2.0))  # zero weights: logits (0, 0, 2) everywhere
    assert np.all(np.asanyarray(prob.dataobj) == round(255 * p))
    assert np.all(np.asanyarray(labels.dataobj) == 2)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "liver_0.nii.gz",
        "liver_0_liver_tumor.nii.gz",
    ]


def predict_with_organ_mask(
    tmp_path: Path, checkpoint: Path, organs: dict[int, tuple[slice, ...]]
) -> Path:
    """Predict case ``a`` (a 30 x 26 x 12 CT at 4 x 4 x 5 mm) with probabilities, restricted by
    an organ mask (TotalSegmentator ids) holding each id of ``organs`` in its box; returns the
    output folder."""
    ct = ct_volume((30, 26, 12), np.diag([4.0, 4.0, 5.0, 1.0]))
    mask = np.zeros(ct.shape, np.uint8)
    for organ_id, box in organs.items():
        mask[box] = organ_id
    save_volume(ct, tmp_path / "in" / "a.nii.gz")
    save_volume(Volume(mask, ct.affine), tmp_path / "mask.nii.gz")
    out = tmp_path / "pred"
    predict_files(
        checkpoint,
        tmp_path / "in",
        out,
        device="cpu",
        organ_masks=tmp_path / "mask.nii.gz",
        save_probabilities=True,
        progress=False,
    )
    return out


def test_probabilities_vanish_where_the_organ_mask_drops_tumor(tmp_path) -> None:
    checkpoint = constant_segmentor(tmp_path / "ckpt", tumor_bias=2.0)
    out = predict_with_organ_mask(tmp_path, checkpoint, {5: np.s_[5:10, 5:10, 3:6]})  # the liver
    labels = np.asanyarray(nib.load(out / "a.nii.gz").dataobj)
    prob = np.asanyarray(nib.load(out / "probabilities" / "a_liver_tumor.nii.gz").dataobj)
    assert labels[7, 7, 4] == 2 and labels[25, 20, 10] == 0
    assert np.array_equal(prob > 0, labels == 2)


def test_a_segmentor_of_several_organs_labels_each_and_masks_each_by_its_organ(tmp_path) -> None:
    """A liver + colon network (5 classes) that calls everything colon tumor: its labels are the
    output ids of the colon tumor (8), kept only near the colon of the organ mask."""
    checkpoint = constant_segmentor(tmp_path / "ckpt", 2.0, organs=("liver", "colon"))
    boxes = {5: np.s_[5:10, 5:10, 3:6], 20: np.s_[18:24, 15:20, 3:6]}  # the liver, the colon
    out = predict_with_organ_mask(tmp_path, checkpoint, boxes)
    labels = np.asanyarray(nib.load(out / "a.nii.gz").dataobj)
    assert labels[20, 17, 4] == 8  # colon tumor, at the colon
    assert labels[7, 7, 4] == 0 and labels[2, 2, 10] == 0  # far from the colon: dropped
    names = sorted(p.name for p in (out / "probabilities").iterdir())
    assert names == ["a_colon_tumor.nii.gz", "a_liver_tumor.nii.gz"]
    colon = np.asanyarray(nib.load(out / "probabilities" / "a_colon_tumor.nii.gz").dataobj)
    assert np.array_equal(colon > 127, labels == 8)


def test_a_probability_file_that_would_overwrite_an_input_is_refused(tmp_path) -> None:
    checkpoint = constant_segmentor(tmp_path / "ckpt", tumor_bias=2.0)
    ct = ct_volume((20, 20, 8), np.diag([4.0, 4.0, 5.0, 1.0]))
    inputs = tmp_path / "out" / "probabilities"  # holds x and what x's probabilities would be
    save_volume(ct, inputs / "x.nii.gz")
    save_volume(ct, inputs / "x_liver_tumor.nii.gz")
    before = {p: p.read_bytes() for p in inputs.iterdir()}
    with pytest.raises(InputError, match="would overwrite the input"):
        predict_files(
            checkpoint,
            inputs,
            tmp_path / "out",
            device="cpu",
            save_probabilities=True,
            progress=False,
        )
    assert {p: p.read_bytes() for p in inputs.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["probabilities"]
