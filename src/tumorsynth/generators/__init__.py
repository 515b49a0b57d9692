"""Tumor appearance generators behind one protocol: draw a spec (random), render it (deterministic).

``heuristic`` (SynTumor-class, calibrated to the scan) and ``diffusion`` (DiffTumor-class, a
trained checkpoint; needs the ``torch`` extra) are built in; others register under their own names.
"""

from __future__ import annotations

from collections.abc import Callable

from tumorsynth.errors import InputError
from tumorsynth.generators.heuristic import HeuristicAppearance, HeuristicGenerator
from tumorsynth.generators.protocol import (
    BatchTumorGenerator,
    RenderInput,
    TumorGenerator,
    TumorSite,
)

__all__ = [
    "BatchTumorGenerator",
    "HeuristicAppearance",
    "HeuristicGenerator",
    "RenderInput",
    "TumorGenerator",
    "TumorSite",
    "get_generator",
    "register_generator",
    "registered_generators",
]


def _diffusion(**options: object) -> TumorGenerator:
    """The learned generator (needs the ``torch`` extra, imported only when asked for)."""
    from tumorsynth.generators.diffusion import DiffusionGenerator

    return DiffusionGenerator(**options)  # type: ignore[arg-type]


_FACTORIES: dict[str, Callable[..., TumorGenerator]] = {
    "heuristic": HeuristicGenerator,
    "diffusion": _diffusion,
}


def register_generator(name: str, factory: Callable[..., TumorGenerator]) -> None:
    """Make a generator available by name (``--generator NAME``, records, transforms)."""
    _FACTORIES[name] = factory


def get_generator(generator: str | TumorGenerator, **options: object) -> TumorGenerator:
    """A generator instance from a name (with factory options) or an instance."""
    if not isinstance(generator, str):
        if not isinstance(generator, TumorGenerator):
            raise TypeError(f"{type(generator).__name__} does not implement TumorGenerator")
        return generator
    try:
        factory = _FACTORIES[generator]
    except KeyError:
        raise InputError(
            f"generator {generator!r}", f"unknown generator; known are {sorted(_FACTORIES)}"
        ) from None
    return factory(**options)


def registered_generators() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))
