"""Every benchmark script still imports against the current package (a renamed function would
otherwise go unnoticed until someone runs the benchmark) and has a ``main``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from shared_data import require_module
from tiny import load_benchmark

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_a_benchmark_script_imports_and_has_a_main(name, monkeypatch):
    require_module("torch")
    require_module("distributed")
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scripts import their shared helpers
    module = load_benchmark(name)
    helpers = {"generator_options"}  # imported by the scripts, not run
    assert name in helpers or callable(getattr(module, "main", None))
    sys.modules.pop(name, None)
