"""Prediction undoes orientation and resampling exactly: a network that labels bright voxels as
tumor must reproduce thresholding on the original (LPS, anisotropic) grid."""

import numpy as np
import torch

from tumorsynth.io.nifti import Volume
from tumorsynth.pipelines.predict import Segmentor


class Threshold(torch.nn.Module):
    """Logits: tumor where the windowed intensity is above 0.5, background elsewhere."""

    def forward(self, x):
        return torch.cat([0.5 - x, torch.zeros_like(x) - 1.0, x - 0.5], dim=1) * 20.0


def test_threshold_network_reproduces_thresholding_on_an_lps_grid():
    rng = np.random.default_rng(0)
    shape = (90, 70, 30)
    g = np.indices(shape).astype(np.float32)
    blob = ((g[0] - 30) / 14) ** 2 + ((g[1] - 40) / 10) ** 2 + ((g[2] - 12) / 5) ** 2 < 1
    ct = np.where(blob, 400, -100).astype(np.int16) + rng.integers(-5, 5, shape).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 10], [0, -0.8, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1.0]])  # LPS
    seg = Segmentor(
        Threshold(),
        {
            "organ": "liver",
            "spacing_mm": [1.2, 1.2, 1.2],
            "hu_window": [-100, 400],
            "patch_size": [32, 32, 32],
        },
        torch.device("cpu"),
    )
    labels = seg.predict(Volume(ct, affine))
    assert labels.shape == shape
    tumor = labels == 2
    dice = 2 * (tumor & blob).sum() / (tumor.sum() + blob.sum())
    assert dice > 0.9
    # Not mirrored: the centre of mass stays where the blob is.
    assert np.allclose(np.argwhere(tumor).mean(0), np.argwhere(blob).mean(0), atol=1.0)
