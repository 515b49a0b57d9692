"""Configurations as a user reads them: every setting on its own YAML line with a one-line
description taken from the numpydoc ``Attributes`` section of its dataclass (what
``tumorsynth config NAME`` prints). ``yaml.safe_load`` of the text gives the config's values
back, so :func:`tumorsynth._settings.load_config` loads it unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import yaml

__all__ = ["commented_yaml", "field_docs", "plain_settings"]


def field_docs(cls: type) -> dict[str, str]:
    """Setting -> one-line description, from the numpydoc ``Attributes`` section of ``cls``'s
    docstring (an entry ``a, b`` describes both; the description's lines are joined).

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Optim:
    ...     '''How to optimize.
    ...
    ...     Attributes
    ...     ----------
    ...     lr, min_lr
    ...         Learning rates (``AdamW``).
    ...     '''
    ...     lr: float = 1e-4
    ...     min_lr: float = 0.0
    >>> field_docs(Optim)
    {'lr': 'Learning rates (AdamW).', 'min_lr': 'Learning rates (AdamW).'}
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    docs: dict[str, str] = {}
    names: list[str] = []
    inside = False
    for index, line in enumerate(lines):
        underline = index + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[index + 1].strip())
        if underline:  # a section header: only "Attributes" is read
            inside = line.strip() == "Attributes"
            names = []
        elif not inside or re.fullmatch(r"-{3,}", line.strip()) or not line.strip():
            continue
        elif not line.startswith(" "):
            names = [name.strip() for name in line.split(":")[0].split(",")]
        else:
            for name in names:
                docs[name] = f"{docs[name]} {line.strip()}" if name in docs else line.strip()
    return {name: text.replace("``", "") for name, text in docs.items()}


def commented_yaml(config: Any) -> str:
    """``config`` (a dataclass instance) as YAML, every setting on its own line with its
    :func:`field_docs` description as a comment; sections are nested blocks. ``yaml.safe_load``
    of the text gives back the config's values (tuples as lists).

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Run:
    ...     '''Attributes
    ...     ----------
    ...     size
    ...         Crop in voxels.
    ...     '''
    ...     size: tuple[int, int] = (64, 32)
    >>> print(commented_yaml(Run()), end="")
    size: [64, 32]  # Crop in voxels.
    """
    return "".join(_commented_lines(config, ""))


def _commented_lines(config: Any, indent: str) -> list[str]:
    docs = field_docs(type(config))
    lines = []
    for f in fields(config):
        value = getattr(config, f.name)
        comment = f"  # {docs[f.name]}" if docs.get(f.name) else ""
        plain = plain_settings(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            lines.append(f"{indent}{f.name}:{comment}\n")
            lines.extend(_commented_lines(value, indent + "  "))
        elif isinstance(plain, list) and any(isinstance(v, (dict, list)) for v in plain):
            lines.append(f"{indent}{f.name}:{comment}\n")  # a list of entries: one per line
            lines.extend(f"{indent}  - {_flow_yaml(entry)}\n" for entry in plain)
        elif isinstance(plain, dict) and any(isinstance(v, (dict, list)) for v in plain.values()):
            lines.append(f"{indent}{f.name}:{comment}\n")  # a nested mapping: a block
            block = yaml.safe_dump(plain, sort_keys=False, width=100, default_flow_style=None)
            lines.extend(f"{indent}  {line}\n" for line in block.splitlines())
        else:
            lines.append(f"{indent}{f.name}: {_flow_yaml(value)}{comment}\n")
    return lines


def _flow_yaml(value: Any) -> str:
    """One value as one line of YAML (flow style: ``[1.5, 1.5]``, ``{liver: 1}``, ``null``)."""
    text = yaml.safe_dump(
        plain_settings(value), default_flow_style=True, width=1_000_000, sort_keys=False
    ).strip()
    return text.removesuffix("...").strip()  # a bare scalar is dumped as a document


def plain_settings(value: Any) -> Any:
    """Settings as YAML/JSON writes them: dataclasses as mappings, tuples as lists, paths as
    strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_settings(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain_settings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_settings(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
