"""Where the real CTs of ../shared/data are, for the tests that read them.

Real-data tests find the data at ``$TUMORSYNTH_DATA`` or ``<repo>/../shared/data``. When it is
missing they skip on a developer machine and FAIL in CI (the variable ``CI`` is set), so CI can
never pass without having run them. Imported as ``from shared_data import require_data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("TUMORSYNTH_DATA", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    """Path of a file or folder under the shared data; skip (dev) or fail (CI) when missing."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        message = (
            f"real CT data missing: {path} (set TUMORSYNTH_DATA or put ../shared/data "
            "beside the repository)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
