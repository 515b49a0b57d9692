"""The settings of a reader study (``tumorsynth turing create --config FILE``): what they are,
their checks, and :func:`load_study` to read them; :mod:`tumorsynth.turing.study` builds the study
from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tumorsynth._settings import config_from_dict, merge_settings, parse_overrides, read_settings
from tumorsynth._types import SIZE_CLASSES, LabelMapSpec, SizeClass
from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import resolve_label_map
from tumorsynth.turing.layout import DEFAULT_PRESETS, TRUTHS

__all__ = [
    "DEFAULT_WINDOWS",
    "StudySettings",
    "StudySource",
    "WindowPreset",
    "load_study",
]


@dataclass(frozen=True)
class StudySource:
    """Where tumors come from.

    Attributes
    ----------
    path
        A dataset folder (nnU-Net v2, MSD, AbdomenAtlas), a manifest.jsonl of tumorsynth
        synthesize, or a list file (.txt, .csv, .tsv) of IMAGE LABEL lines (paths relative to it).
    label_map
        Label map of its labels (a preset such as lits, a JSON file, or a mapping); null for a
        manifest (tumorsynth's output labels; only the tumors it added are used).
    """

    path: str
    label_map: LabelMapSpec | None = None


@dataclass(frozen=True)
class WindowPreset:
    """A window readers can pick.

    Attributes
    ----------
    name
        Its name on the button (abdomen, liver, ...).
    width_hu
        Window width (HU).
    level_hu
        Window level, the centre of the window (HU).
    """

    name: str
    width_hu: float
    level_hu: float


#: :data:`~tumorsynth.turing.layout.DEFAULT_PRESETS` as settings.
DEFAULT_WINDOWS: tuple[WindowPreset, ...] = tuple(
    WindowPreset(name, width, level) for name, (width, level) in DEFAULT_PRESETS.items()
)


@dataclass(frozen=True)
class StudySettings:
    """A reader study as written (``tumorsynth turing create --config FILE``).

    Attributes
    ----------
    title
        Shown to readers (say nothing there about which items are which).
    seed
        Seed of the draw, the item ids, their order and the study id: same seed, same study.
    real
        Sources of real tumors: [{path, label_map}], paths relative to the working folder.
    synthetic
        Sources of synthetic tumors: [{path, label_map}] (label_map may be left out for a manifest).
    organs
        Organs whose tumors are used; [] = every organ with a tumor label in the sources.
    size_classes
        Size classes used (tiny, small, medium, large: by equivalent diameter, the boundaries at the geometric means of the organ profile's class diameters).
    synthetic_fraction
        Share of synthetic items, in (0, 1).
    n_items
        Number of items; null = as many as the sources allow at that fraction.
    min_volume_mm3
        Tumor components smaller than this (mm^3) are not used.
    spacing_mm
        Item grid: common (the coarsest spacing per axis of the scans used), native (only when they all share one) or [z, y, x] in mm.
    crop_mm
        Item size: auto (largest tumor's extent + 2 x 20 mm, at least 48 mm per axis) or [z, y, x] in mm.
    presets
        Window presets readers can pick: {name, width_hu, level_hu}.
    default_preset
        The preset an item opens with.
    """

    title: str = "Reader study"
    seed: int = 0
    real: tuple[StudySource, ...] = ()
    synthetic: tuple[StudySource, ...] = ()
    organs: tuple[str, ...] = ()
    size_classes: tuple[SizeClass, ...] = SIZE_CLASSES
    synthetic_fraction: float = 0.5
    n_items: int | None = None
    min_volume_mm3: float = 30.0
    spacing_mm: Literal["common", "native"] | tuple[float, float, float] = "common"
    crop_mm: Literal["auto"] | tuple[float, float, float] = "auto"
    presets: tuple[WindowPreset, ...] = DEFAULT_WINDOWS
    default_preset: str = "abdomen"

    def check(self) -> list[str]:
        from tumorsynth.organs import registered_organs

        problems = []
        if not self.title.strip():
            problems.append("title: expected a title, found an empty one")
        if self.seed < 0:
            problems.append(f"seed: expected an integer >= 0, found {self.seed}")
        for truth in TRUTHS:
            if not getattr(self, truth):
                problems.append(
                    f"{truth}: expected at least one source of {truth} tumors, found none"
                )
        unknown = [o for o in self.organs if o not in registered_organs()]
        if unknown:
            problems.append(
                f"organs: expected organs with a profile ({', '.join(registered_organs())}), "
                f"found {unknown}"
            )
        for key in ("organs", "size_classes"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                problems.append(f"{key}: expected each once, found {list(values)}")
        if not self.size_classes:
            problems.append("size_classes: expected at least one size class, found none")
        if not 0.0 < self.synthetic_fraction < 1.0:
            problems.append(
                f"synthetic_fraction: expected a number in (0, 1), found {self.synthetic_fraction}"
            )
        if self.n_items is not None and self.n_items < 2:
            problems.append(f"n_items: expected at least 2 (or null), found {self.n_items}")
        if not self.min_volume_mm3 >= 0:
            problems.append(f"min_volume_mm3: expected >= 0, found {self.min_volume_mm3}")
        for key in ("spacing_mm", "crop_mm"):
            value = getattr(self, key)
            if not isinstance(value, str) and not all(v > 0 for v in value):
                problems.append(f"{key}: expected 3 sizes > 0 (mm), found {list(value)}")
        names = [preset.name for preset in self.presets]
        if not names:
            problems.append("presets: expected at least one window preset, found none")
        if len(set(names)) != len(names) or not all(n.strip() for n in names):
            problems.append(f"presets: expected distinct, non-empty names, found {names}")
        for index, preset in enumerate(self.presets):
            if not preset.width_hu > 0:
                problems.append(
                    f"presets[{index}].width_hu: expected a width > 0 HU, found {preset.width_hu}"
                )
        if self.default_preset not in names:
            problems.append(
                f"default_preset: expected one of the presets ({', '.join(names)}), "
                f"found {self.default_preset!r}"
            )
        return problems

    def input_problems(self) -> list[str]:
        """Sources that do not exist, label maps that do not resolve or are missing."""
        problems = []
        for truth in TRUTHS:
            for index, source in enumerate(getattr(self, truth)):
                where = f"{truth}[{index}]"
                if not Path(source.path).exists():
                    problems.append(f"{where}.path: {source.path}: not found")
                if source.label_map is None:
                    if Path(source.path).suffix != ".jsonl":
                        problems.append(
                            f"{where}.label_map: a dataset folder or list file needs its label "
                            "map (a preset such as lits, a JSON file or a mapping), found none"
                        )
                    continue
                try:
                    resolve_label_map(source.label_map)
                except InputError as exc:
                    problems.append(f"{where}.label_map: {exc}")
        return problems


def load_study(
    path: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] = ()
) -> StudySettings:
    """The study settings of a YAML file with ``--set`` ``overrides``, checked whole (values and
    that the sources exist) before anything is read; :class:`InputError` names the file and
    every wrong setting."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            str(path),
            "expected a reader study configuration (YAML), found no such file",
            fix="`tumorsynth config turing_study` prints an example",
        )
    merged = merge_settings(read_settings(path), parse_overrides(overrides))
    return config_from_dict(StudySettings, merged, str(path), inputs=True)
