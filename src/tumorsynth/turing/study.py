"""``tumorsynth turing create``: a blinded, randomized reader study of real and synthetic tumors.

Example (``tumorsynth turing create --config study.yaml --out STUDY``; ``tumorsynth config
turing_study`` prints a complete one)::

    title: Liver tumors, real or synthetic?
    seed: 7
    real:
      - {path: data/ircad_real.txt, label_map: lits}      # IMAGE LABEL lines
    synthetic:
      - {path: runs/synth/manifest.jsonl}                  # tumorsynth's output labels
    organs: [liver]
    size_classes: [medium, large]
    synthetic_fraction: 0.5

Each tumor of the sources (a 26-connected component of an organ's tumor label, see
:mod:`~tumorsynth.turing.study_items`) is a candidate; the draw is balanced over organs and
size classes within real and within synthetic, and hits ``synthetic_fraction`` exactly where
the counts allow. Every item is then cut out the same way:

- reoriented to LPS, stored as ``(z, y, x)`` int16 (:mod:`tumorsynth.turing.layout`);
- resampled (linear) onto one grid: by default the coarsest spacing per axis among the scans
  the items come from, so that no spacing, shape or file size tells a reader which scan (and so
  which class) an item came from. Identical treatment is the point: even an item whose scan
  already has the study's spacing passes through the same interpolation. (The same
  interpolation is not the same smoothing: an item whose scan has the grid's spacing is sampled
  on its own voxels, one from a finer scan between them, which averages its noise a little. An
  explicit ``spacing_mm`` coarser than every source puts all items through a comparable
  downsampling.)
- one crop shape for all, centred on the tumor's central voxel, padded with -1024 HU outside
  the scan.

Item ids are random 16-hex-digit strings and the items' order is shuffled, both drawn from the
seed, as is the study id: the same seed and the same inputs give a byte-identical folder (no
time stamp is written into a file; the item files all get one modification time, so neither
their order nor their times say which were cut together). The answer key (``key/key.json``) and the operator's montage
(``key/items.png``) are written beside, never inside, what readers reach. The folder is built
in a hidden sibling folder and renamed into place at the end: a failed run leaves nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tumorsynth._settings import config_from_dict, merge_settings, parse_overrides, read_settings
from tumorsynth._types import SIZE_CLASSES, LabelMapSpec, SizeClass
from tumorsynth.errors import InputError, OutputError
from tumorsynth.io.atomic import check_is_folder, output_dir
from tumorsynth.io.label_maps import resolve_label_map
from tumorsynth.pipelines.realism_inputs import cases_from_sources, check_out_apart
from tumorsynth.realism.feature_rows import CaseInput
from tumorsynth.turing.layout import (
    DEFAULT_PRESETS,
    KEY_NAME,
    STUDY_NAME,
    KeyEntry,
    StudyInfo,
    Truth,
)
from tumorsynth.turing.study_items import (
    LpsGrid,
    StudyTumor,
    case_tumors,
    crop_item,
    crop_shape,
    grid_spacing,
    manifest_generators,
    select_tumors,
    write_montage,
)

__all__ = [
    "StudyOutput",
    "StudySettings",
    "StudySource",
    "WindowPreset",
    "create_study",
    "format_summary",
    "load_study",
]

_TRUTHS: tuple[Truth, Truth] = ("real", "synthetic")


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
        for truth in _TRUTHS:
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
        for truth in _TRUTHS:
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


@dataclass(frozen=True)
class StudyOutput:
    """What :func:`create_study` wrote: the folder, its public info and its answer key (in
    the order of ``info.item_ids``)."""

    folder: Path
    info: StudyInfo
    key: tuple[KeyEntry, ...]


def create_study(
    settings: StudySettings,
    out: str | os.PathLike[str],
    *,
    where: str = "study settings",
    progress: bool = True,
) -> StudyOutput:
    """Build the study folder ``out`` (see :mod:`tumorsynth.turing.layout`).

    Parameters
    ----------
    settings
        The study (:func:`load_study`).
    out
        The study folder to create; it must not exist or be empty.
    where
        Named in errors about the settings (the configuration file).
    progress
        Show a progress bar over the items on stderr.

    Raises
    ------
    InputError
        Before anything is written: a non-empty ``out`` or one inside a source, a scan in two
        sources, sources without tumors of the organs and size classes asked for, fewer tumors than ``n_items`` needs
        (the message counts what was found per class, organ and size), ``spacing_mm: native``
        for scans of different spacings. A source that cannot be read names its file; so does
        an image whose label lies on another grid (found while the items are cut: the folder
        being built is removed).
    OutputError
        ``out`` cannot be written.
    """
    out = Path(out)
    check_is_folder(out)
    if out.is_dir() and any(out.iterdir()):
        raise InputError(
            str(out),
            "expected a new or empty folder for the study, found files in it",
            fix="choose another --out",
        )
    for truth in _TRUTHS:
        check_out_apart(out, [s.path for s in getattr(settings, truth)], truth)
    rng = np.random.default_rng(settings.seed)
    cases = {truth: _cases(settings, truth) for truth in _TRUTHS}
    _check_apart(cases, where)
    pools = {truth: _tumors(settings, truth, cases[truth]) for truth in _TRUTHS}
    counts = _counts(settings, pools, where)
    # one shuffled order of organs and sizes for both classes: their remainders match
    organs = [str(o) for o in rng.permutation(_organs(settings, pools))]
    sizes = [str(s) for s in rng.permutation(settings.size_classes)]
    tumors = [
        tumor
        for truth in _TRUTHS
        for tumor in select_tumors(
            _usable(settings, pools[truth]), counts[truth], organs, sizes, rng
        )
    ]
    _warn_if_unmatched(tumors)
    spacing = _grid_spacing(settings, tumors, where)
    shape = _crop_shape(settings, tumors, spacing)
    ids = _item_ids(rng, len(tumors))
    order = [int(i) for i in rng.permutation(len(tumors))]
    info = StudyInfo(
        title=settings.title,
        item_ids=tuple(ids[i] for i in order),
        shape=shape,
        spacing_mm=spacing,
        presets={p.name: (float(p.width_hu), float(p.level_hu)) for p in settings.presets},
        default_preset=settings.default_preset,
        study_id=rng.bytes(16).hex(),
    )
    entries = {ids[i]: _key_entry(ids[i], tumor) for i, tumor in enumerate(tumors)}
    key = tuple(entries[item_id] for item_id in info.item_ids)
    target = Path(os.path.abspath(out))  # "." and "dir/" have a parent and a name too
    with output_dir(target.parent):
        building = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        )
        try:
            os.chmod(building, 0o777 & ~_umask())
            _write_study(building, settings, info, key, dict(zip(ids, tumors)), progress)
            try:
                os.replace(building, target)  # onto a missing or empty folder
            except OSError as exc:
                raise OutputError(
                    str(out), f"cannot move the finished study into place ({exc.strerror})"
                ) from exc
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return StudyOutput(out, info, key)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cases(settings: StudySettings, truth: Truth) -> list[CaseInput]:
    cases: list[CaseInput] = []
    for index, source in enumerate(getattr(settings, truth)):
        label_map = None if source.label_map is None else resolve_label_map(source.label_map)
        cases += cases_from_sources(
            [source.path],
            source=truth,
            label_map=label_map,
            organs=settings.organs,
            flag=f"{truth}[{index}]",
        )
    return cases


def _check_apart(cases: Mapping[Truth, Sequence[CaseInput]], where: str) -> None:
    """Refuse a scan named twice (in two sources, or as real and as synthetic)."""
    seen: dict[tuple[Path, Path], str] = {}
    for truth in _TRUTHS:
        for case in cases[truth]:
            pair = (Path(case.image).resolve(), Path(case.label).resolve())
            if pair in seen:
                raise InputError(
                    where,
                    f"the case ({case.image}, {case.label}) is among the {seen[pair]} and the "
                    f"{truth} sources; each scan may be in one source only",
                    fix="remove it from one of the sources",
                )
            seen[pair] = truth


def _tumors(settings: StudySettings, truth: Truth, cases: Sequence[CaseInput]) -> list[StudyTumor]:
    paths = [s.path for s in getattr(settings, truth)]
    generators = manifest_generators(paths) if truth == "synthetic" else {}
    found: list[StudyTumor] = []
    for case in cases:
        found += case_tumors(
            case, truth, min_volume_mm3=settings.min_volume_mm3, generators=generators
        )
    return found


def _organs(settings: StudySettings, pools: Mapping[Truth, Sequence[StudyTumor]]) -> list[str]:
    """The organs asked for, or every organ with tumors in the sources (in order of appearance)."""
    if settings.organs:
        return list(settings.organs)
    return list(dict.fromkeys(t.organ for pool in pools.values() for t in pool))


def _usable(settings: StudySettings, pool: Sequence[StudyTumor]) -> list[StudyTumor]:
    return [t for t in pool if t.size_class in settings.size_classes]


def _counts(
    settings: StudySettings, pools: Mapping[Truth, Sequence[StudyTumor]], where: str
) -> dict[Truth, int]:
    """Items per class.

    ``n_items`` given: split by ``synthetic_fraction``, the synthetic count rounded half up.
    Otherwise the largest study the usable tumors allow whose split is exactly the fraction
    (0.5: an even number of items, half of them synthetic); only when no such study fits, the
    largest with the rounded split. InputError with what was found when nothing fits.
    """
    fraction = settings.synthetic_fraction
    have = {truth: len(_usable(settings, pools[truth])) for truth in _TRUTHS}

    def split(n: int) -> dict[Truth, int]:
        synthetic = math.floor(n * fraction + 0.5)
        return {"real": n - synthetic, "synthetic": synthetic}

    def fits(wanted: Mapping[Truth, int]) -> bool:
        return all(0 < wanted[t] <= have[t] for t in _TRUTHS)

    if settings.n_items is not None:
        wanted = split(settings.n_items)
        if fits(wanted):
            return wanted
        need = (
            f"n_items {settings.n_items} at synthetic_fraction {fraction:g} needs "
            f"{wanted['real']} real and {wanted['synthetic']} synthetic tumors"
        )
    else:
        sizes = range(have["real"] + have["synthetic"], 1, -1)
        exact = [n for n in sizes if abs(n * fraction - round(n * fraction)) < 1e-9]
        for n in [*exact, *sizes]:
            if fits(split(n)):
                return split(n)
        need = "a study needs at least one real and one synthetic tumor"
    asked = ", ".join(settings.organs) or "any organ"
    raise InputError(
        where,
        f"{need} of {asked} ({', '.join(settings.size_classes)}, at least "
        f"{settings.min_volume_mm3:g} mm^3); the sources hold {_found_text(pools)}",
        fix="add sources, lower n_items, or allow more organs or size classes",
    )


def _found_text(pools: Mapping[Truth, Sequence[StudyTumor]]) -> str:
    parts = []
    for truth in _TRUTHS:
        tally = Counter((t.organ, t.size_class) for t in pools[truth])
        cells = ", ".join(f"{organ} {size} {n}" for (organ, size), n in sorted(tally.items()))
        parts.append(f"{truth}: {cells or 'none'}")
    return "; ".join(parts)


def _warn_if_unmatched(tumors: Sequence[StudyTumor]) -> None:
    """Warn when an organ or a size class is only among the real or only among the synthetic
    items: readers could tell the class from it."""
    for attribute in ("organ", "size_class"):
        seen = {
            truth: {getattr(t, attribute) for t in tumors if t.truth == truth} for truth in _TRUTHS
        }
        only = {
            "real": sorted(seen["real"] - seen["synthetic"]),
            "synthetic": sorted(seen["synthetic"] - seen["real"]),
        }
        parts = [f"{', '.join(v)} only among the {t} items" for t, v in only.items() if v]
        if parts:
            warnings.warn(
                f"{attribute.replace('_', ' ')}: {'; '.join(parts)}: readers may tell real from "
                "synthetic by it (add sources, or narrow organs or size_classes)",
                stacklevel=3,
            )


def _grid_spacing(
    settings: StudySettings, tumors: Sequence[StudyTumor], where: str
) -> tuple[float, float, float]:
    return grid_spacing(settings.spacing_mm, [t.spacing_zyx for t in tumors], where)


def _crop_shape(
    settings: StudySettings, tumors: Sequence[StudyTumor], spacing: Sequence[float]
) -> tuple[int, int, int]:
    return crop_shape(settings.crop_mm, [t.half_extent_mm for t in tumors], spacing)


def _item_ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        candidate = rng.bytes(8).hex()
        if candidate not in ids:
            ids.append(candidate)
    return ids


def _key_entry(item_id: str, tumor: StudyTumor) -> KeyEntry:
    return KeyEntry(
        item_id=item_id,
        truth=tumor.truth,
        organ=tumor.organ,
        size_class=tumor.size_class,
        diameter_mm=tumor.diameter_mm,
        volume_ml=tumor.volume_ml,
        source_image=str(tumor.image),
        source_label=str(tumor.label),
        component=tumor.component,
        center_vox=tumor.center_vox,
        generator=tumor.generator,
    )


def _write_study(
    folder: Path,
    settings: StudySettings,
    info: StudyInfo,
    key: Sequence[KeyEntry],
    tumors: Mapping[str, StudyTumor],
    progress: bool,
) -> None:
    """Every file of the study into ``folder``: items (each scan read once), study.json, key."""
    from tqdm import tqdm

    from tumorsynth._settings_docs import plain_settings
    from tumorsynth.io import check_same_grid, load_image
    from tumorsynth.io.nifti import Volume

    (folder / "items").mkdir()
    (folder / "key").mkdir()
    middles: dict[str, np.ndarray] = {}
    by_image: dict[Path, list[str]] = {}
    for item_id in info.item_ids:
        by_image.setdefault(tumors[item_id].image, []).append(item_id)
    bar = tqdm(total=len(info.item_ids), unit="item", desc="items", disable=not progress)
    try:
        for image_path, item_ids in by_image.items():
            first = tumors[item_ids[0]]
            image = load_image(image_path)
            shape = first.label_shape
            grid_of_label = Volume(
                np.broadcast_to(np.uint8(0), shape),
                np.asarray(first.label_affine),
                path=first.label,
            )
            check_same_grid(image, grid_of_label)
            grid = LpsGrid.of(image.affine, image.shape)
            view = grid.view(image.array)
            for item_id in item_ids:
                tumor = tumors[item_id]
                item = crop_item(
                    view,
                    grid.zyx_of(tumor.center_vox),
                    grid.spacing_zyx,
                    info.spacing_mm,
                    info.shape,
                )
                (folder / "items" / f"{item_id}.raw").write_bytes(item.tobytes(order="C"))
                middles[item_id] = item[item.shape[0] // 2].copy()
                bar.update()
            del image, view
    finally:
        bar.close()
    stamp = time.time()
    for item_id in info.item_ids:  # one time on every item: the write order says nothing either
        os.utime(folder / "items" / f"{item_id}.raw", (stamp, stamp))
    (folder / STUDY_NAME).write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    payload = {
        "seed": settings.seed,
        "settings": plain_settings(settings),
        "items": [entry.to_dict() for entry in key],
    }
    (folder / KEY_NAME).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    write_montage(folder / "key" / "items.png", info, key, middles)


def format_summary(output: StudyOutput) -> str:
    """Counts per truth x organ x size class, the grid, the crop and the item size."""
    info, key = output.info, output.key
    tally = Counter((e.truth, e.organ, e.size_class) for e in key)
    sizes = [s for s in SIZE_CLASSES if any(e.size_class == s for e in key)]
    rows = sorted({(e.truth, e.organ) for e in key}, key=lambda r: (r[0] != "real", r[1]))
    label_width = max(len(f"{t} {o}") for t, o in rows)
    lines = [
        f"{info.title}: {len(key)} items ({sum(e.truth == 'real' for e in key)} real, "
        f"{sum(e.truth == 'synthetic' for e in key)} synthetic) -> {output.folder}",
        " " * label_width + "".join(f"  {s:>6}" for s in sizes),
    ]
    for truth, organ in rows:
        cells = "".join(f"  {tally[(truth, organ, s)]:>6}" for s in sizes)
        lines.append(f"{truth + ' ' + organ:<{label_width}}{cells}")
    z, y, x = info.shape
    sz, sy, sx = info.spacing_mm
    lines += [
        f"grid: {sz:g} x {sy:g} x {sx:g} mm (z, y, x; LPS); crop {z} x {y} x {x} voxels "
        f"({z * sz:.0f} x {y * sy:.0f} x {x * sx:.0f} mm); {info.item_bytes:,} bytes per item",
        f"answer key: {output.folder / KEY_NAME} and key/items.png (the operator's; never "
        "give readers the folder itself)",
    ]
    return "\n".join(lines)
