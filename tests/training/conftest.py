from pathlib import Path

import pytest
from tiny import write_phantom_dataset


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """An nnU-Net folder of three small healthy phantoms (labels: the "phantom" preset)."""
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "Dataset001_Phantom", cases=3)
