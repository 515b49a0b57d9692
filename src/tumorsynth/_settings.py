"""One way to configure: YAML (or JSON) + ``--set a.b=c`` overrides -> a frozen config dataclass.

:func:`load_config` reads a file, applies the overrides and builds the dataclass with
:func:`config_from_dict`, which checks every value against its field's annotation (``int``,
``float``, ``bool``, ``str``, ``Literal`` choices, ``X | None``, fixed and variable tuples, lists,
dicts, nested dataclasses) before the dataclass is built; unknown keys are errors naming the known
ones; YAML lists become tuples. Then each dataclass checks itself: a config class may define
``check(self) -> list[str]``, its own rules (ranges, settings that depend on each other, label
maps), each problem named by its key path below that class. All problems of one file are reported
together, each under its full key path::

    train.yaml: 2 settings are wrong: optim.max_steps: expected an integer, found 'ten' (str); ...

``where`` (a file) prefixes the message; ``key_path`` prefixes every key, so a caller that reads
a nested part of a file (a checkpoint's ``config`` entry) can name the full path. Shared by the
training configs, the experiment config and the learned models' configs; :func:`read_settings`
also reads the option files of ``synthesize --config``.

Every field is documented in its class docstring's numpydoc ``Attributes`` section;
:func:`tumorsynth._settings_docs.commented_yaml` prints a config with those descriptions as one
comment per setting (``tumorsynth config NAME``), and what it prints loads back unchanged.

Choices made here: a key given twice in one mapping is refused (YAML keeps the last silently);
a bool is not a number (``batch_size: true`` is refused); a float where an
integer is expected is accepted only when it is integral (``seed: 2.0`` is 2; ``seed: 1.5`` is
refused, never truncated); numbers must be finite; a bare string is not a list.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from tumorsynth.errors import InputError

__all__ = [
    "AT_LEAST_0",
    "AT_LEAST_1",
    "FRACTION",
    "POSITIVE",
    "Interval",
    "bound_problems",
    "check_bounds",
    "config_from_dict",
    "dotted_settings",
    "load_config",
    "merge_settings",
    "parse_overrides",
    "read_settings",
    "run_bounds",
    "section_bounds",
]

T = TypeVar("T")


def load_config(
    cls: type[T],
    path: str | os.PathLike[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    inputs: bool = False,
) -> T:
    """``cls`` from a YAML/JSON file, ``overrides`` winning over the file, checked whole.

    ``overrides`` are ``--set`` items (``["optim.max_steps=5"]``, values parsed as YAML) or a
    mapping, nested or dotted (``{"optim": {"max_steps": 5}}``, ``{"optim.max_steps": 5}``).
    ``inputs``: also check that the files and folders the config reads exist (what a command
    does before it starts; see :func:`config_from_dict`). Raises :class:`InputError` naming the
    file and every wrong setting.
    """
    merged = merge_settings(read_settings(path), parse_overrides(overrides))
    return config_from_dict(cls, merged, str(path), inputs=inputs)


def read_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (or JSON) file that must hold a mapping (an empty file is no settings); errors
    name the file."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise InputError(str(path), f"cannot read config ({exc.strerror})") from exc
    except _DuplicateKeyError as exc:
        raise InputError(
            str(path),
            f"line {exc.line}: {exc.key!r} is given twice in one mapping; YAML keeps only the "
            "last, so the settings of the first would be silently dropped",
            fix="write each setting or section once",
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(str(path), f"expected YAML, found unparsable text ({exc})") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(str(path), f"expected a mapping of settings, found {type(raw).__name__}")
    return raw


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"line {line}: {key!r} is given twice")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (YAML would keep the
    last silently: a second ``optim:`` section would drop the first's settings)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise _DuplicateKeyError(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_overrides(items: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``["optim.max_steps=5"]`` -> ``{"optim": {"max_steps": 5}}`` (values parsed as YAML); a
    mapping, nested or dotted, is nested.

    Examples
    --------
    >>> parse_overrides(["optim.max_steps=5", "data.healthy=[a, b]"])
    {'optim': {'max_steps': 5}, 'data': {'healthy': ['a', 'b']}}
    """
    if isinstance(items, Mapping):
        return dotted_settings(items)
    flat = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError("--set", f"expected KEY=VALUE, found {item!r}")
        try:
            flat[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InputError("--set", f"{key}: expected a YAML value, found {value!r}") from exc
    return dotted_settings(flat)


def dotted_settings(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.max_steps": 5}`` -> ``{"optim": {"max_steps": 5}}`` (nested keys kept)."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, last = str(dotted).split(".")
        node = nested
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[last] = (
            merge_settings(node[last], value) if _both_dicts(node.get(last), value) else value
        )
    return nested


def merge_settings(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, section by section (neither is changed)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge_settings(out[key], value) if _both_dicts(out.get(key), value) else value
    return out


def _both_dicts(a: Any, b: Any) -> bool:
    return isinstance(a, Mapping) and isinstance(b, Mapping)


class _Invalid(Exception):
    """One value does not fit its annotation (collected, then reported with its key path)."""


def config_from_dict(
    cls: type[T],
    data: Mapping[str, Any],
    where: str,
    *,
    key_path: str = "",
    complete: bool = False,
    inputs: bool = False,
) -> T:
    """``cls(**data)`` after checking every key and value against ``cls``'s type hints.

    Nested dataclass fields take mappings (checked the same way, their keys named
    ``section.key``); a section left empty (``model:``) takes its defaults. Each dataclass that
    defines ``check()`` is then checked by it (inner sections first); with ``inputs``, so is
    every one that defines ``input_problems()`` (the files and folders it reads exist: checked
    when a command is about to run, not when a config is only read). ``complete``: every field
    must be present (a saved checkpoint config writes them all, so a missing one means the file
    was edited or truncated). Raises :class:`InputError` at ``where`` listing every problem by
    its key path.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Optim:
    ...     lr: float = 1e-4
    ...     size: tuple[int, int, int] = (96, 96, 96)
    >>> config_from_dict(Optim, {"lr": 1, "size": [64, 64, 32]}, "c.yaml")
    Optim(lr=1.0, size=(64, 64, 32))
    >>> config_from_dict(Optim, {"lr": "fast"}, "c.yaml", key_path="optim")
    Traceback (most recent call last):
    ...
    tumorsynth.errors.InputError: c.yaml: optim.lr: expected a number, found 'fast' (str)
    """
    problems: list[str] = []
    value = _build(cls, data, key_path, problems, complete, inputs)
    if problems:
        raise InputError(where, _join(problems))
    return value


@dataclasses.dataclass(frozen=True)
class Interval:
    """Allowed range of a number (``None``: unbounded on that side)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def describe(self) -> str:
        low = None if self.low is None else ("> " if self.low_open else ">= ") + f"{self.low:g}"
        high = None if self.high is None else ("< " if self.high_open else "<= ") + f"{self.high:g}"
        return " and ".join(part for part in (low, high) if part)


AT_LEAST_0 = Interval(0)
AT_LEAST_1 = Interval(1)
POSITIVE = Interval(0, low_open=True)
FRACTION = Interval(0, 1)


def bound_problems(config: Any, bounds: Mapping[str, Interval]) -> list[str]:
    """Every dotted setting in ``bounds`` (``"optim.lr"``) that lies outside its interval, as
    ``"optim.lr: expected a value > 0, found -1.0"``; a tuple's entries are checked one by one
    and ``None`` (not set) passes. For a config's ``check()``."""
    problems = []
    for dotted, interval in bounds.items():
        value: Any = config
        for part in dotted.split("."):
            value = getattr(value, part)
        entries = value if isinstance(value, tuple) else (value,)
        for entry in entries:
            if entry is not None and not interval.contains(entry):
                problems.append(f"{dotted}: expected a value {interval.describe()}, found {value}")
                break
    return problems


def section_bounds(bounds: Mapping[str, Interval], section: str) -> dict[str, Interval]:
    """The bounds of one section, named within it (``data.val_fraction`` -> ``val_fraction``);
    ``section=""``: the bounds of no section (``seed``)."""
    if not section:
        return {k: v for k, v in bounds.items() if "." not in k}
    prefix = f"{section}."
    return {k.removeprefix(prefix): v for k, v in bounds.items() if k.startswith(prefix)}


def run_bounds(bounds: Mapping[str, Interval]) -> dict[str, Interval]:
    """The bounds a run config's own ``check`` keeps: ``seed`` and the network's (``model.*``);
    each other section checks its own with :func:`section_bounds`."""
    return {k: v for k, v in bounds.items() if k.split(".")[0] in ("seed", "model")}


def check_bounds(
    config: Any, bounds: Mapping[str, Interval], where: str, *, key_path: str = ""
) -> None:
    """:func:`bound_problems` raised together as one :class:`InputError` at ``where``, each
    setting named ``key_path.setting`` (as :func:`config_from_dict` names them)."""
    problems = [_under(key_path, p) for p in bound_problems(config, bounds)]
    if problems:
        raise InputError(where, _join(problems))


def _under(key_path: str, problem: str) -> str:
    """A problem named below a section (``optim.lr: ...`` -> ``train.optim.lr: ...``)."""
    if not key_path:
        return problem
    return f"{key_path}{problem}" if problem.startswith("[") else f"{key_path}.{problem}"


def _join(problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} settings are wrong: " + "; ".join(problems)


def _build(
    cls: type,
    data: Any,
    key_path: str,
    problems: list[str],
    complete: bool = False,
    inputs: bool = False,
) -> Any:
    """A dataclass from a mapping, appending problems instead of raising (None if any)."""
    if not isinstance(data, Mapping):
        problems.append(f"{_label(key_path)}expected a mapping of settings, found {_found(data)}")
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    count = len(problems)
    if unknown:
        problems.append(
            f"{_label(key_path)}unknown setting(s) {unknown}; known are {sorted(known)}"
        )
    values: dict[str, Any] = {}
    for name, f in known.items():
        path = f"{key_path}.{name}" if key_path else name
        if name not in data:
            if complete or (f.default is MISSING and f.default_factory is MISSING):
                problems.append(f"{path}: required setting is missing")
            continue
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            # ``model:`` with nothing under it takes the section's defaults
            section = {} if data[name] is None else data[name]
            values[name] = _build(annotation, section, path, problems, complete, inputs)  # type: ignore[arg-type]
            continue
        try:
            values[name] = _coerce(data[name], annotation, path)
        except _Invalid as exc:
            problems.append(str(exc))
    if len(problems) > count:
        return None
    try:
        built = cls(**values)
    except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ check
        problems.append(f"{_label(key_path)}invalid settings ({exc})")
        return None
    own = []
    for method in ("check", "input_problems") if inputs else ("check",):
        if callable(getattr(built, method, None)):
            own += getattr(built, method)()
    problems.extend(_under(key_path, p) for p in own)
    return None if own else built


def _coerce(value: Any, annotation: Any, path: str) -> Any:
    """``value`` as ``annotation`` wants it (lists -> tuples, ints -> floats), or _Invalid."""
    if annotation is Any:
        return value
    if annotation is type(None) or annotation is None:
        if value is None:
            return None
        raise _Invalid(f"{path}: expected null, found {_found(value)}")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return _coerce_union(value, args, path)
    if origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
        choices = ", ".join(repr(c) for c in args)
        raise _Invalid(f"{path}: expected one of {choices}, found {_found(value)}")
    if origin in (tuple, list):
        return _coerce_sequence(value, annotation, origin, args, path)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Invalid(f"{path}: expected {_describe(annotation)}, found {_found(value)}")
        if len(args) == 2:
            return {
                _coerce(k, args[0], f"{path}.{k}"): _coerce(v, args[1], f"{path}.{k}")
                for k, v in value.items()
            }
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        problems: list[str] = []
        built = _build(annotation, value, path, problems)  # type: ignore[arg-type]
        if problems:
            raise _Invalid(_join(problems))
        return built
    return _coerce_scalar(value, annotation, path)


def _coerce_scalar(value: Any, annotation: Any, path: str) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # 2.0 is exactly 2; 1.5 is refused below, never truncated
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _Invalid(f"{path}: expected a finite number, found {value}")
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
    elif isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
    else:  # an annotation this loader does not know: the dataclass decides
        return value
    raise _Invalid(f"{path}: expected {_describe(annotation)}, found {_found(value)}")


def _coerce_union(value: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and type(None) in args:
        return None
    nested = []
    for arm in args:
        if arm is type(None):
            continue
        try:
            return _coerce(value, arm, path)
        except _Invalid as exc:
            if not str(exc).startswith(f"{path}: expected"):
                nested.append(str(exc))  # the value has this arm's shape; an inner part is wrong
    if nested:
        raise _Invalid(nested[0])
    wanted = _describe_arms(args)
    raise _Invalid(f"{path}: expected {wanted}, found {_found(value)}")


def _coerce_sequence(
    value: Any, annotation: Any, origin: type, args: tuple[Any, ...], path: str
) -> Any:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        hint = ""
        if isinstance(value, str) and not (origin is tuple and args and args[-1] is not Ellipsis):
            hint = f" (one entry is written as a list: [{value}])"
        raise _Invalid(f"{path}: expected {_describe(annotation)}, found {_found(value)}{hint}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _Invalid(
                f"{path}: expected {_describe(annotation)}, found {len(value)} "
                f"value{'s' if len(value) != 1 else ''} {list(value)}"
            )
        item_types = list(args)
    else:
        item_types = [args[0] if args else Any] * len(value)
    items = [
        _coerce(v, t, f"{path}[{i}]")
        for i, (v, t) in enumerate(zip(value, item_types, strict=True))
    ]
    return tuple(items) if origin is tuple else items


def _describe(annotation: Any) -> str:
    """``int`` -> "an integer", ``tuple[int, int, int]`` -> "3 integers", ..."""
    if annotation is Any:
        return "anything"
    if annotation is type(None) or annotation is None:
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return _describe_arms(args)
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in args)
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            kinds = {_plural(a) for a in args}
            return f"{len(args)} {kinds.pop() if len(kinds) == 1 else 'values'}"
        return f"a list (each {_describe(args[0])})" if args and args[0] is not Any else "a list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(annotation):
        return "a mapping of settings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _describe_arms(args: tuple[Any, ...]) -> str:
    """A union's arms, its Literal choices merged: "one of 'a', 'b', 'mixed' or null"."""
    choices = [c for a in args if typing.get_origin(a) is Literal for c in typing.get_args(a)]
    others = [_describe(a) for a in args if typing.get_origin(a) is not Literal]
    if choices:
        others.insert(0, "one of " + ", ".join(repr(c) for c in choices))
    return " or ".join(others)


def _plural(annotation: Any) -> str:
    names = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    return names.get(annotation, "values")


def _found(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _label(key_path: str) -> str:
    return f"{key_path}: " if key_path else ""
