"""Tumor appearance generators behind one protocol: draw a spec (random), render it (deterministic).

``heuristic`` (SynTumor-class, calibrated to the scan), ``diffusion`` (DiffTumor-class) and
``adversarial`` (FreeTumor-class; both learned ones take a trained checkpoint and need the ``torch``
extra) are built in; others register under their own names.
A generator is rebuilt from its name and the options its records carry
(``get_generator(record.generator, **record.generator_options)``), so nothing outside this
package needs to know which generators exist.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from tumorsynth.errors import InputError
from tumorsynth.generators.heuristic import HeuristicAppearance, HeuristicGenerator
from tumorsynth.generators.protocol import (
    RenderInput,
    TumorGenerator,
    TumorGeneratorBase,
    TumorSite,
)

__all__ = [
    "HeuristicAppearance",
    "HeuristicGenerator",
    "RenderInput",
    "TumorGenerator",
    "TumorGeneratorBase",
    "TumorSite",
    "generator_takes",
    "get_generator",
    "register_generator",
    "registered_generators",
]

#: A generator factory, or ``"module:attribute"`` naming one that is imported on first use (a
#: generator with heavy dependencies, such as torch, costs nothing until it is asked for).
Factory = Callable[..., TumorGenerator] | str

_FACTORIES: dict[str, Factory] = {
    "heuristic": HeuristicGenerator,
    "diffusion": "tumorsynth.generators.diffusion:DiffusionGenerator",
    "adversarial": "tumorsynth.generators.adversarial:AdversarialGenerator",
}


def register_generator(name: str, factory: Factory) -> None:
    """Make a generator available by name (``--generator NAME``, records, transforms).

    ``factory(**options)`` builds it: a class, a function, or ``"module:attribute"`` to import
    on first use.
    """
    _FACTORIES[name] = factory


def registered_generators() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def get_generator(generator: str | TumorGenerator, **options: Any) -> TumorGenerator:
    """A generator instance from a name (with factory options) or an instance.

    Raises
    ------
    InputError
        An unknown name, or an option the generator does not take (naming the generators that
        take it).

    Examples
    --------
    >>> get_generator("heuristic").name
    'heuristic'
    >>> get_generator("heuristic", checkpoint="model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tumorsynth.errors.InputError: generator 'heuristic': takes no option 'checkpoint', found ...
    """
    if not isinstance(generator, str):
        if not isinstance(generator, TumorGenerator):
            raise TypeError(f"{type(generator).__name__} does not implement TumorGenerator")
        return generator
    factory = _factory(generator)
    for option in _unknown_options(factory, options):
        takers = [
            name
            for name in registered_generators()
            if name != generator and _takes_if_importable(name, option)
        ]
        who = (
            f"; only the {' and '.join(takers)} generator{'s' * (len(takers) > 1)} "
            f"take{'s' * (len(takers) == 1)} it"
            if takers
            else ""
        )
        raise InputError(
            f"generator {generator!r}",
            f"takes no option {option!r}, found {option}={options[option]!r}{who}",
        )
    return factory(**options)


def generator_takes(name: str, option: str) -> bool:
    """Whether generator ``name`` takes factory option ``option`` (``checkpoint``, ``device``:
    a learned generator's)."""
    return not _unknown_options(_factory(name), {option: None})


def _factory(name: str) -> Callable[..., TumorGenerator]:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise InputError(
            f"generator {name!r}", f"unknown generator; known are {list(registered_generators())}"
        ) from None
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
        _FACTORIES[name] = factory
    return factory


def _unknown_options(factory: Callable[..., Any], options: Mapping[str, Any]) -> list[str]:
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return []
    known = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [option for option in options if option not in known]


def _takes_if_importable(name: str, option: str) -> bool:
    """:func:`generator_takes`, False for a generator whose dependencies are not installed."""
    try:
        return generator_takes(name, option)
    except ImportError:
        return False
