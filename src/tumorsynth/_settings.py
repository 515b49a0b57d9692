"""Frozen dataclass configs from plain mappings (YAML/JSON): unknown keys are errors naming the
known ones, YAML lists become tuples. Shared by training configs and learned-model configs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from tumorsynth.errors import InputError

__all__ = ["as_tuples", "check_keys", "config_from_dict", "nested_config_from_dict"]

T = TypeVar("T")


def check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(where, f"unknown setting(s) {unknown}; known are {sorted(known)}")


def as_tuples(values: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """YAML lists -> tuples for tuple-typed fields (frozen configs stay hashable)."""
    out = dict(values)
    for f in fields(cls):
        if f.name in out and isinstance(out[f.name], list) and "tuple" in str(f.type):
            out[f.name] = tuple(out[f.name])
    return out


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """``cls(**data)`` after checking the keys; a wrong value type is an error naming ``where``."""
    if not isinstance(data, Mapping):
        raise InputError(where, f"expected a mapping of settings, found {data!r}")
    check_keys(data, cls, where)
    try:
        return cls(**as_tuples(data, cls))
    except (TypeError, ValueError) as exc:
        raise InputError(where, f"invalid settings ({exc})") from exc


def nested_config_from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """``cls`` from a mapping whose sections (its dataclass-valued fields, e.g. ``data``,
    ``model``) are mappings too; each section's keys are checked against its own class."""
    sections = {
        f.name: type(f.default_factory())  # type: ignore[misc]
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default_factory is not MISSING
    }
    values = {
        key: config_from_dict(sections[key], value or {}, f"{where}: {key}")
        if key in sections
        else value
        for key, value in dict(data or {}).items()
    }
    return config_from_dict(cls, values, where)
