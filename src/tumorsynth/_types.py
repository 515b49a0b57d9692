"""Type aliases shared across tumorsynth (one place, so signatures read the same everywhere)."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "SIZE_CLASSES",
    "RngLike",
    "SizeClass",
    "Vec3",
    "LabelMapSpec",
    "as_rng",
    "derive_seed",
    "plain_json",
]

#: Anything that can seed randomness: a numpy ``Generator``, an int seed, or ``None`` (fresh entropy).
RngLike = np.random.Generator | int | None

#: SynTumor size classes (base radius tiny 4, small 8, medium 16, large 32 mm).
SizeClass = Literal["tiny", "small", "medium", "large"]
SIZE_CLASSES: tuple[SizeClass, ...] = ("tiny", "small", "medium", "large")

#: A label map in a configuration: a preset name, a JSON file, or an inline mapping of organ (or
#: ``<organ>_tumor``) -> id or ids, e.g. ``{"liver": 1, "kidney": [2, 3]}``.
LabelMapSpec = str | dict[str, int | list[int]]

#: Three floats in voxel-axis order (i, j, k) unless the name says otherwise.
Vec3 = tuple[float, float, float]


def as_rng(rng: RngLike) -> np.random.Generator:
    """Return a numpy ``Generator`` for ``rng``; never touches global random state.

    Examples
    --------
    >>> int(as_rng(3).integers(10)) == int(as_rng(3).integers(10))
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(None if rng is None else int(rng))
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from ints and strings (same parts, same seed, on every platform).

    Used to give each case and each tumor of a batch its own seed from one user seed, so that
    results do not depend on worker count or processing order.
    """
    words: list[int] = []
    for part in parts:
        if isinstance(part, str):
            words.extend(part.encode("utf-8"))
            words.append(0x1F)
        else:
            words.append(int(part) & 0xFFFFFFFF)
            words.append((int(part) >> 32) & 0xFFFFFFFF)
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def plain_json(value: object) -> object:
    """Numpy scalars and tuples -> plain Python for JSON; floats keep their exact repr, so a
    spec read back from JSON renders voxel for voxel the same."""
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain_json(v) for v in value]
    return value
