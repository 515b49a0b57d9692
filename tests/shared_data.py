"""What the tests need from outside the repository: the real CTs of ../shared/data and the
optional dependencies (torch, MONAI, SimpleITK).

Real-data tests find the data at ``$TUMORSYNTH_DATA`` or ``<repo>/../shared/data``. When the data
or an optional dependency is missing they skip on a developer machine and FAIL in CI (the variable
``CI`` is set), so CI can never pass without having run them. Imported as
``from shared_data import require_data, require_module``; use ``require_module`` instead of
``pytest.importorskip``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("TUMORSYNTH_DATA", REPO.parent / "shared" / "data"))


def skip_or_fail(message: str) -> NoReturn:
    """Skip on a developer machine, fail in CI (``CI`` set); also at a module's top level."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


def require_data(*parts: str) -> Path:
    """Path of a file or folder under the shared data; skip (dev) or fail (CI) when missing."""
    path = shared_data_dir().joinpath(*parts)
    if not path.exists():
        skip_or_fail(
            f"real CT data missing: {path} (set TUMORSYNTH_DATA or put ../shared/data "
            "beside the repository)"
        )
    return path


def require_module(name: str) -> ModuleType:
    """Import an optional dependency (``"torch"``, ``"monai.metrics"``, ``"SimpleITK"``); skip
    (dev) or fail (CI) when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        skip_or_fail(
            f"optional dependency {name!r} is not installed ({error}); install the extras: "
            'pip install -c constraints.txt -e ".[all]"'
        )
