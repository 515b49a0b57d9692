"""Tiny data and configurations shared by the training, generator and CLI tests (seconds on a CPU).

Imported as ``from tiny import ...`` (``tests/`` is on the test path, like ``conftest``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tumorsynth.io.nifti import save_volume
from tumorsynth.io.phantom import make_phantom

#: A VQ autoencoder that trains in seconds on 16^3 crops at 4 mm.
TINY_AE: dict[str, Any] = {
    "channels": [8, 16],
    "num_embeddings": 32,
    "embedding_dim": 4,
    "crop_size": 16,
    "spacing_mm": [4.0, 4.0, 4.0],
}
#: A latent denoiser to go with it.
TINY_DENOISER: dict[str, Any] = {
    "channels": [16, 32],
    "attention_levels": [False, True],
    "num_res_blocks": 1,
    "num_head_channels": 8,
    "norm_num_groups": 8,
    "num_train_timesteps": 50,
    "sample_steps": [2, 3],
}


def write_phantom_dataset(root: Path, cases: int = 2) -> Path:
    """An nnU-Net folder of healthy phantoms ``ph<i>`` (96 x 80 x 48 voxels of 4 x 4 x 5 mm,
    labels of the ``"phantom"`` preset)."""
    for i in range(cases):
        ct, seg = make_phantom(i, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
        save_volume(ct, root / "imagesTr" / f"ph{i}_0000.nii.gz")
        save_volume(seg, root / "labelsTr" / f"ph{i}.nii.gz")
    return root


def segmentor_settings(data: Path, out: Path, max_steps: int = 2, **data_settings: Any) -> dict:
    """A UNet on 32^3 patches at 4 mm trained on synthetic liver tumors in ``data``."""
    return {
        "name": "tiny",
        "seed": 0,
        "data": {
            "mode": "synthetic",
            "healthy": [str(data)],
            "healthy_label_map": "phantom",
            "val_fraction": 0.0,
            "spacing_mm": [4, 4, 4],
            "num_workers": 0,
            **data_settings,
        },
        "model": {"patch_size": [32, 32, 32], "channels": [8, 16, 32]},
        "optim": {"max_steps": max_steps, "batch_size": 2},
        "train": {"out_dir": str(out)},
    }
