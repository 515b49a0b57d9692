from pathlib import Path

import pytest
from tiny import write_phantom_dataset


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """An nnU-Net folder of three small healthy phantoms (labels: the "phantom" preset)."""
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "Dataset001_Phantom", cases=3)


def tiny_config(dataset: Path, out: Path, **data):
    settings = {
        "mode": "synthetic",
        "organ": "liver",
        "healthy": [{"path": str(dataset), "label_map": "phantom"}],
        "val_fraction": 0.34,
        "spacing_mm": [4.0, 4.0, 4.0],
        "num_workers": 0,
        "tumor_size": "medium",
        "tumors_per_case": 2,
    }
    settings.update(data)
    return {
        "name": "tiny",
        "seed": 0,
        "data": settings,
        "model": {"backbone": "unet", "patch_size": [32, 32, 32], "channels": [8, 16, 32]},
        "optim": {"max_steps": 8, "batch_size": 2, "warmup_steps": 2, "lr": 1e-3},
        "train": {"out_dir": str(out), "val_every": 4, "checkpoint_every": 4, "log_every": 1},
    }
