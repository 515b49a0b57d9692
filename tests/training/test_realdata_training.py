"""Training and prediction smoke run on a crop of IRCAD patient 1.7 (real CT, LPS, anisotropic):
the loss goes down, the checkpoint round-trips, the prediction lands on the crop's grid."""

import csv

import nibabel as nib
import numpy as np
import pytest

from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.pipelines.predict import Segmentor, predict_files
from tumorsynth.training.config import TrainConfig
from tumorsynth.training.segmentation import train_segmentation


@pytest.mark.slow
def test_p07_crop_trains_and_predicts(p07, tmp_path):
    ct, seg = p07
    box = (slice(100, 300), slice(150, 330), slice(60, 120))  # through the liver
    affine = ct.affine.copy()
    affine[:3, 3] = ct.affine[:3, :3] @ np.array([s.start for s in box]) + ct.affine[:3, 3]
    root = tmp_path / "Dataset001_P07crop"
    image = Volume(np.asfortranarray(ct.array[box]), affine, ct.header)
    save_volume(image, root / "imagesTr" / "p07_0000.nii.gz")
    save_volume(
        Volume(np.asfortranarray(seg.array[box]), affine, seg.header),
        root / "labelsTr" / "p07.nii.gz",
    )
    config = TrainConfig.from_dict(
        {
            "name": "p07",
            "data": {
                "mode": "synthetic",
                "healthy": [str(root)],
                "healthy_label_map": "lits",
                "val_fraction": 0.0,
                "spacing_mm": [2.5, 2.5, 2.5],
                "num_workers": 0,
                "tumor_size": "medium",
                "tumors_per_case": 2,
            },
            "model": {"patch_size": [48, 48, 32], "channels": [8, 16, 32]},
            "optim": {"max_steps": 24, "batch_size": 2, "warmup_steps": 2, "lr": 3e-3},
            "train": {"out_dir": str(tmp_path / "run"), "log_every": 1, "checkpoint_every": 24},
        }
    )
    train_segmentation(config, progress=False)
    with open(tmp_path / "run" / "metrics.csv") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle) if r["loss"]]
    assert np.mean(losses[-6:]) < np.mean(losses[:6])
    segmentor = Segmentor.from_pretrained(tmp_path / "run" / "checkpoints" / "last", device="cpu")
    assert segmentor.config["spacing_mm"] == [2.5, 2.5, 2.5]
    written = predict_files(
        tmp_path / "run" / "checkpoints" / "last",
        root / "imagesTr",
        tmp_path / "pred",
        device="cpu",
        progress=False,
    )
    pred = nib.load(str(written[0][0]))
    assert pred.shape == image.shape and np.allclose(pred.affine, affine)
    assert nib.aff2axcodes(pred.affine) == ("L", "P", "S")
