"""The helpers that make missing data or optional dependencies skip locally and fail in CI."""

from __future__ import annotations

import pytest
from shared_data import require_data, require_module

MISSING_MODULE = "tumorsynth_no_such_optional_dependency"


def test_an_installed_module_is_returned() -> None:
    assert require_module("numpy.linalg").__name__ == "numpy.linalg"


def test_a_missing_module_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING_MODULE):
        require_module(MISSING_MODULE)


def test_a_missing_module_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING_MODULE}.*not installed"):
        require_module(MISSING_MODULE)


def test_missing_data_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("TUMORSYNTH_DATA", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="real CT data missing"):
        require_data("ircadb01_p07")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="real CT data missing"):
        require_data("ircadb01_p07")
    (tmp_path / "ircadb01_p07").mkdir()
    assert require_data("ircadb01_p07") == tmp_path / "ircadb01_p07"
