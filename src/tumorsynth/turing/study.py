"""``tumorsynth turing create``: a blinded, randomized reader study of real and synthetic tumors.

Example (``tumorsynth turing create --config study.yaml --out STUDY``; ``tumorsynth config
turing_study`` prints a complete one; the settings: :mod:`~tumorsynth.turing.study_settings`)::

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

- reoriented to LPS, stored as ``(z, y, x)`` int16 (:mod:`tumorsynth.turing.layout`; the
  cut: :mod:`tumorsynth.turing.study_grid`);
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

import numpy as np

from tumorsynth._types import SIZE_CLASSES
from tumorsynth.errors import InputError, OutputError
from tumorsynth.io.atomic import check_is_folder, output_dir
from tumorsynth.io.label_maps import resolve_label_map
from tumorsynth.pipelines.realism_inputs import cases_from_sources, check_out_apart
from tumorsynth.realism.feature_rows import CaseInput
from tumorsynth.turing.layout import KEY_NAME, STUDY_NAME, TRUTHS, KeyEntry, StudyInfo, Truth
from tumorsynth.turing.study_grid import LpsGrid, crop_item, crop_shape, grid_spacing
from tumorsynth.turing.study_items import (
    StudyTumor,
    case_tumors,
    manifest_generators,
    select_tumors,
    write_montage,
)
from tumorsynth.turing.study_settings import StudySettings

__all__ = [
    "StudyOutput",
    "StudySettings",
    "create_study",
    "format_summary",
]


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
        The study (:func:`~tumorsynth.turing.study_settings.load_study`).
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
    for truth in TRUTHS:
        check_out_apart(out, [s.path for s in getattr(settings, truth)], truth)
    rng = np.random.default_rng(settings.seed)
    cases = {truth: _cases(settings, truth) for truth in TRUTHS}
    _check_apart(cases, where)
    pools = {truth: _tumors(settings, truth, cases[truth]) for truth in TRUTHS}
    counts = _counts(settings, pools, where)
    # one shuffled order of organs and sizes for both classes: their remainders match
    organs = [str(o) for o in rng.permutation(_organs(settings, pools))]
    sizes = [str(s) for s in rng.permutation(settings.size_classes)]
    tumors = [
        tumor
        for truth in TRUTHS
        for tumor in select_tumors(
            _usable(settings, pools[truth]), counts[truth], organs, sizes, rng
        )
    ]
    _warn_if_unmatched(tumors)
    spacing = grid_spacing(settings.spacing_mm, [t.spacing_zyx for t in tumors], where)
    shape = crop_shape(settings.crop_mm, [t.half_extent_mm for t in tumors], spacing)
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
    for truth in TRUTHS:
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
    have = {truth: len(_usable(settings, pools[truth])) for truth in TRUTHS}

    def split(n: int) -> dict[Truth, int]:
        synthetic = math.floor(n * fraction + 0.5)
        return {"real": n - synthetic, "synthetic": synthetic}

    def fits(wanted: Mapping[Truth, int]) -> bool:
        return all(0 < wanted[t] <= have[t] for t in TRUTHS)

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
    for truth in TRUTHS:
        tally = Counter((t.organ, t.size_class) for t in pools[truth])
        cells = ", ".join(f"{organ} {size} {n}" for (organ, size), n in sorted(tally.items()))
        parts.append(f"{truth}: {cells or 'none'}")
    return "; ".join(parts)


def _warn_if_unmatched(tumors: Sequence[StudyTumor]) -> None:
    """Warn when an organ or a size class is only among the real or only among the synthetic
    items: readers could tell the class from it."""
    for attribute in ("organ", "size_class"):
        seen = {
            truth: {getattr(t, attribute) for t in tumors if t.truth == truth} for truth in TRUTHS
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
