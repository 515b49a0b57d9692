"""Per-tumor realism features: one row per tumor (and per patch), for real and synthetic tumors.

A *tumor* is a 26-connected component of an organ's tumor labels of at least
``min_volume_mm3``; components are numbered 1, 2, ... by volume, largest first. Each tumor is
measured in a crop around it (its bounding box plus a margin), never on full-volume float copies.

Feature names are ``<family>_<name>``; the family says which feature set of the classifier
two-sample test a feature belongs to (:func:`feature_family`):

========  ====================================================================================
size_     grows with the tumor: volume, diameters, surface; pyradiomics' size-dependent shape
          and texture features
shape_    scale-free shape: sphericity, solidity, elongation, flatness, surface irregularity,
          lobulation (and pyradiomics' Sphericity, Elongation, Flatness)
ctx_      the tumor in absolute HU: mean, interior spread, fine-scale noise, heterogeneity, rim,
          core, edge width and sharpness
rel_      the tumor relative to its host shell: contrast, CNR, noise / heterogeneity / spread
          ratios, rim-core drop, edge step / host noise
host_     the host shell alone (organ 3-10 mm around the tumor): the host-only baseline
tumor_    pyradiomics texture and first order of the tumor in HU
norm_     the same on the tumor normalized by its shell: ``(HU - shell mean) / shell noise``
========  ====================================================================================

Radiomics (``tumor_``, ``host_``, ``norm_`` and the ``_rad_`` shape features) are computed after
resampling to ``FeatureSettings.spacing_mm`` (radiomics depend on spacing) with a fixed bin width;
every other feature is measured at the scan's own spacing. See
:mod:`tumorsynth.realism.appearance`, :mod:`~tumorsynth.realism.shape_features` and
:mod:`~tumorsynth.realism.radiomics` for the definitions.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import cc3d
import edt
import numpy as np

from tumorsynth.box import Box
from tumorsynth.errors import InputError, TumorsynthError
from tumorsynth.io.label_maps import LabelMap, label_mask
from tumorsynth.io.nifti import Volume
from tumorsynth.organs import equivalent_diameter_mm
from tumorsynth.realism.appearance import EDGE_RANGE_MM, context_features, host_shell
from tumorsynth.realism.feature_rows import (
    FAMILIES,
    FEATURE_DESCRIPTIONS,
    FEATURES_VERSION,
    CaseInput,
    FeatureSettings,
    TumorFeatures,
    feature_family,
    tumor_organs,
)
from tumorsynth.realism.shape_features import shape_features

__all__ = [
    "FAMILIES",
    "FEATURES_VERSION",
    "FEATURE_DESCRIPTIONS",
    "CaseInput",
    "DEFAULT_SETTINGS",
    "FeatureSettings",
    "NoTumorWarning",
    "TumorFeatures",
    "case_features",
    "extract_features",
    "feature_family",
    "tumor_organs",
    "without_ignored",
]


#: The settings used when none are given.
DEFAULT_SETTINGS = FeatureSettings()


def case_features(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    label_map: LabelMap,
    organs: Sequence[str] = (),
    case: str = "case",
    group: str = "",
    source: str = "real",
    settings: FeatureSettings = DEFAULT_SETTINGS,
) -> list[TumorFeatures]:
    """Features of every tumor of ``organs`` in one scan (rows sorted by organ, tumor, patch).

    Parameters
    ----------
    image
        CT volume (HU), any real dtype (int16 is not copied whole).
    label
        Label volume of the same shape.
    spacing_mm
        Voxel size (mm) along each axis.
    label_map
        Which ids are which organ and which tumor.
    organs
        Organs whose tumors are measured; () = every organ with a tumor label in the map.
    case, group, source
        Copied into the rows (``group`` "" = ``case``).
    settings
        :class:`FeatureSettings`.

    Returns
    -------
    list of TumorFeatures
        Empty when no tumor of at least ``settings.min_volume_mm3`` is found.

    Raises
    ------
    InputError
        Image and label of different shapes, not 3-D, an organ with no tumor ids in the map.
    """
    if image.ndim != 3 or image.shape != label.shape:
        raise InputError(
            f"case {case!r}",
            f"expected a 3-D image and a label of the same shape, found {image.shape} and "
            f"{label.shape}",
        )
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    wanted = tuple(organs) or tumor_organs(label_map)
    if not wanted:
        raise InputError(
            f"label map {label_map.name!r}",
            "names no tumor label for any organ, so there is no tumor to measure",
            fix='pass a map with "<organ>_tumor" ids',
        )
    all_tumors = label_map.all_tumor_ids()
    rows: list[TumorFeatures] = []
    for organ in wanted:
        tumor_ids = label_map.tumor_ids(organ)
        if not tumor_ids:
            raise InputError(
                f"label map {label_map.name!r}",
                f"has no tumor ids for organ {organ!r}",
                fix=f'add "{organ}_tumor" to the map, or measure another organ',
            )
        tumors = label_mask(label, tumor_ids)
        found = Box.of_mask(tumors)
        if found is None:
            continue
        comps = cc3d.connected_components(tumors[found.slices], connectivity=26)
        del tumors
        counts = np.bincount(comps.ravel())
        voxel_mm3 = float(np.prod(spacing))
        order = [i for i in np.argsort(-counts[1:], kind="stable") + 1]
        kept = [int(i) for i in order if counts[i] * voxel_mm3 >= settings.min_volume_mm3]
        ctx = _Context(image, label, spacing, label_map.organ_ids(organ), all_tumors, settings)
        for rank, index in enumerate(kept, start=1):
            rows += ctx.measure(comps == index, found, case, group or case, source, organ, rank)
    return rows


class NoTumorWarning(UserWarning):
    """A case holds no tumor of the measured organs (of at least the minimum volume)."""


def extract_features(
    cases: Sequence[CaseInput],
    settings: FeatureSettings = DEFAULT_SETTINGS,
    *,
    workers: int = 1,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> list[TumorFeatures]:
    """Features of every tumor of ``cases``, in the order of the cases.

    Parameters
    ----------
    cases
        The cases (files are read with :func:`tumorsynth.io.load_image` / ``load_label``).
    settings
        :class:`FeatureSettings`.
    workers
        Processes; more than 1 measures cases in parallel.
    cache_dir
        Folder of per-case JSON caches, keyed by the sha256 of the image and label files, the
        label map, organs, case id, group, source, settings and :data:`FEATURES_VERSION`. A hit
        skips the work; an unreadable cache file is recomputed and replaced.
    progress
        Show a progress bar on stderr.

    Warns
    -----
    NoTumorWarning
        For each case without a tumor of its organs (it adds no rows).

    Raises
    ------
    InputError
        Missing or unreadable files, image and label on different grids (naming the file); an
        unexpected failure is re-raised naming the case and its image.
    """
    from tqdm import tqdm

    if int(workers) < 1:
        raise InputError("workers", f"expected >= 1, found {workers}")
    if settings.radiomics:
        from tumorsynth.realism.radiomics import load_radiomics

        load_radiomics()  # a missing extra is said once, before any work
    results: list[list[TumorFeatures]] = [[] for _ in cases]
    bar = tqdm(total=len(cases), unit="case", desc="features", disable=not progress)
    try:
        if int(workers) == 1 or len(cases) <= 1:
            for i, item in enumerate(cases):
                results[i] = _case_rows(item, settings, cache_dir)
                bar.update()
        else:
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

            with ProcessPoolExecutor(max_workers=min(int(workers), len(cases))) as pool:
                futures = {
                    pool.submit(_case_rows, item, settings, cache_dir): i
                    for i, item in enumerate(cases)
                }
                pending = set(futures)
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            results[futures[future]] = future.result()
                            bar.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    for item, rows in zip(cases, results):
        if not rows:
            warnings.warn(
                f"{item.label}: no tumor of {', '.join(item.organs) or 'the mapped organs'} of at "
                f"least {settings.min_volume_mm3:g} mm^3 (label map {item.label_map.name!r}); "
                "the case adds no rows",
                NoTumorWarning,
                stacklevel=2,
            )
    return [row for rows in results for row in rows]


def _case_rows(
    item: CaseInput, settings: FeatureSettings, cache_dir: Path | None
) -> list[TumorFeatures]:
    """One case's rows, from the cache when it holds them; errors name the case's files."""
    from tumorsynth.io import check_same_grid, load_image, load_label
    from tumorsynth.io.atomic import atomic_path
    from tumorsynth.io.identity import sha256_of

    for path in (item.image, item.label, item.ignore_label):
        if path is not None and not Path(path).is_file():
            raise InputError(str(path), f"case {item.case!r}: file does not exist")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{_cache_key(item, settings, sha256_of)}.json"
        cached = _read_cache(cache)
        if cached is not None:
            return cached
    try:
        image, label = load_image(item.image), load_label(item.label)
        check_same_grid(image, label)
        rows = case_features(
            image.array,
            without_ignored(item, label),
            image.spacing_mm,
            label_map=item.label_map,
            organs=item.organs,
            case=item.case,
            group=item.group or item.case,
            source=item.source,
            settings=settings,
        )
    except TumorsynthError:
        raise
    except Exception as exc:
        raise RuntimeError(
            f"{item.image}: measuring the features of case {item.case!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if cache is not None:
        payload = {"version": FEATURES_VERSION, "rows": [r.to_dict() for r in rows]}
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(payload, allow_nan=False), encoding="utf-8")
    return rows


def without_ignored(item: CaseInput, label: Volume) -> np.ndarray:
    """``label``'s array with the tumor voxels of ``item.ignore_label`` set to background (the
    real tumors a synthetic case inherited from its source scan)."""
    from tumorsynth.io import check_same_grid

    if item.ignore_label is None:
        return label.array
    if item.ignore_label_map is None:
        raise ValueError(f"case {item.case!r}: ignore_label without ignore_label_map")
    ignore, drop = _ignored_tumors(Path(item.ignore_label), item.ignore_label_map.all_tumor_ids())
    check_same_grid(label, ignore)
    return np.where(drop, 0, label.array).astype(label.array.dtype, copy=False)


@lru_cache(maxsize=2)
def _ignored_tumors(path: Path, ids: tuple[int, ...]) -> tuple[Volume, np.ndarray]:
    """The label of lesions to leave out and its tumor voxels, read once per process: every
    synthetic case made from one source scan names the same file."""
    from tumorsynth.io import load_label

    ignore = load_label(path)
    return ignore, np.isin(ignore.array, ids)


def _cache_key(item: CaseInput, settings: FeatureSettings, sha256_of: Any) -> str:
    key = {
        "image": sha256_of(item.image),
        "label": sha256_of(item.label),
        "label_map": item.label_map.to_json(),
        "organs": list(item.organs),
        "case": item.case,
        "group": item.group or item.case,
        "source": item.source,
        "ignore_label": sha256_of(item.ignore_label) if item.ignore_label else None,
        "ignore_label_map": item.ignore_label_map.to_json() if item.ignore_label_map else None,
        "settings": settings.to_dict(),
        "version": FEATURES_VERSION,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> list[TumorFeatures] | None:
    """The rows of a cache file; None when it is missing, unreadable or of another version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["version"] != FEATURES_VERSION:
            return None
        return [TumorFeatures.from_dict(row) for row in data["rows"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class _Context:
    """What every tumor of one organ in one scan is measured against."""

    def __init__(
        self,
        image: np.ndarray,
        label: np.ndarray,
        spacing: tuple[float, float, float],
        organ_ids: Sequence[int],
        tumor_ids: Sequence[int],
        settings: FeatureSettings,
    ) -> None:
        self.image, self.label, self.spacing = image, label, spacing
        self.organ_ids, self.tumor_ids, self.settings = organ_ids, tumor_ids, settings
        reach = max(settings.shell_mm[1], EDGE_RANGE_MM)
        if settings.patches_per_tumor:
            reach = max(reach, settings.patch_radius_mm + 1.0)
        self.margin = [int(math.ceil((reach + 2.0) / s)) for s in spacing]

    def measure(
        self,
        component: np.ndarray,
        found: Box,
        case: str,
        group: str,
        source: str,
        organ: str,
        rank: int,
    ) -> list[TumorFeatures]:
        """The rows of one tumor (``component``: its mask within ``found``)."""
        settings, spacing = self.settings, self.spacing
        own = Box.of_mask(component)
        assert own is not None  # a component has voxels
        tumor_box = Box(tuple(a + b for a, b in zip(found.origin, own.origin)), own.shape)  # type: ignore[arg-type]
        crop = _grown(tumor_box, self.margin, self.image.shape)
        tumor = _placed(component[own.slices], tumor_box, crop)
        img = self.image[crop.slices].astype(np.float32)
        lab = self.label[crop.slices]
        host = label_mask(lab, self.organ_ids) & ~label_mask(lab, self.tumor_ids) & ~tumor
        volume_mm3 = float(tumor.sum()) * float(np.prod(spacing))
        centre = np.argwhere(tumor).mean(axis=0) + np.asarray(crop.origin)
        base: dict[str, Any] = {
            "case": case,
            "group": group,
            "source": source,
            "organ": organ,
            "tumor": rank,
            "volume_ml": volume_mm3 / 1000.0,
            "diameter_mm": equivalent_diameter_mm(volume_mm3),
        }
        values = shape_features(tumor, spacing)
        values.update(context_features(img, tumor, host, spacing, shell_mm=settings.shell_mm))
        outside = edt.edt(~tumor, anisotropy=spacing)
        shell = host_shell(outside, host, settings.shell_mm)
        if settings.radiomics:
            values.update(self._radiomics(img, tumor, shell, values, shape=True))
        rows = [
            TumorFeatures(
                **base,
                patch=0,
                center_vox=tuple(float(c) for c in centre),  # type: ignore[arg-type]
                bbox=tuple((o, o + n) for o, n in zip(tumor_box.origin, tumor_box.shape)),  # type: ignore[arg-type]
                values=values,
            )
        ]
        if settings.patches_per_tumor:
            rows += self._patches(img, tumor, host, shell, outside, crop, base)
        return rows

    def _radiomics(
        self,
        img: np.ndarray,
        tumor: np.ndarray,
        shell: np.ndarray,
        context: Mapping[str, float],
        *,
        shape: bool,
    ) -> dict[str, float]:
        from tumorsynth.realism.radiomics import radiomics_features

        s = self.settings
        return radiomics_features(
            img,
            tumor,
            shell,
            self.spacing,
            target_mm=s.spacing_mm,
            bin_width_hu=s.bin_width_hu,
            norm_bin_width=s.norm_bin_width,
            host_mean_hu=context["host_mean_hu"],
            host_noise_hu=context["host_noise_hu"],
            shape=shape,
        )

    def _patches(
        self,
        img: np.ndarray,
        tumor: np.ndarray,
        host: np.ndarray,
        shell: np.ndarray,
        outside: np.ndarray,
        crop: Box,
        base: Mapping[str, Any],
    ) -> list[TumorFeatures]:
        """Spherical patches centred on random host voxels at the tumor's boundary."""
        s, spacing = self.settings, self.spacing
        candidates = np.argwhere(host & (outside <= 1.5 * max(spacing)))
        if not len(candidates):
            candidates = np.argwhere(tumor)
        words = f"{base['case']}\0{base['organ']}".encode()
        rng = np.random.default_rng([int(s.seed), zlib.crc32(words), int(base["tumor"])])
        picks = rng.integers(0, len(candidates), size=int(s.patches_per_tumor))
        axes = [np.arange(n) * sp for n, sp in zip(img.shape, spacing)]
        rows = []
        for k, pick in enumerate(picks, start=1):
            centre = candidates[int(pick)]
            dist2 = sum(
                ((a - c * sp) ** 2).reshape([-1 if i == j else 1 for j in range(3)])
                for i, (a, c, sp) in enumerate(zip(axes, centre, spacing))
            )
            region = np.asarray(dist2 <= s.patch_radius_mm**2)
            values = context_features(img, tumor, host, spacing, shell_mm=s.shell_mm, region=region)
            if s.radiomics:
                values.update(
                    self._radiomics(img, tumor & region, shell & region, values, shape=False)
                )
            values = {k: v for k, v in values.items() if not k.startswith(("size_", "shape_"))}
            within = Box.of_mask(region)
            assert within is not None
            rows.append(
                TumorFeatures(
                    **base,
                    patch=k,
                    center_vox=tuple(float(c + o) for c, o in zip(centre, crop.origin)),  # type: ignore[arg-type]
                    bbox=tuple(  # type: ignore[arg-type]
                        (o + w, o + w + n)
                        for o, w, n in zip(crop.origin, within.origin, within.shape)
                    ),
                    values=values,
                )
            )
        return rows


def _grown(box: Box, margin: Sequence[int], volume_shape: Sequence[int]) -> Box:
    """``box`` grown by ``margin`` voxels per axis, clipped to the volume."""
    lo = [max(0, o - m) for o, m in zip(box.origin, margin)]
    hi = [min(int(n), o + k + m) for o, k, m, n in zip(box.origin, box.shape, margin, volume_shape)]
    return Box(tuple(lo), tuple(b - a for a, b in zip(lo, hi)))  # type: ignore[arg-type]


def _placed(mask: np.ndarray, box: Box, crop: Box) -> np.ndarray:
    """``mask`` (the content of ``box``) placed into ``crop``, as a boolean array of its shape."""
    out = np.zeros(crop.shape, dtype=bool)
    out[crop.inner(box)] = mask
    return out
