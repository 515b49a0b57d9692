"""Does a label file fit its label map? Organ volume, HU and position priors, and preset scoring.

A wrong label map is silent: with ``totalsegmentator`` on an IRCAD/MSD file (1 liver, 5 kidney)
the kidneys become "liver". :func:`check_label_map` measures every label id once (volume in mL,
median HU of the image inside it, centroid relative to the body in patient directions from the
affine, whether the field of view cuts it), checks the organs the map names against adult priors,
scores every preset the same way, and

- refuses (:class:`~tumorsynth.errors.InputError`) when the map is contradicted (an organ on the
  wrong side, of impossible size or density) and another preset fits the file, naming it;
- warns (:class:`LabelMapWarning`) when something is merely unusual (ids the map does not know,
  an organ near the midline, left and right swapped throughout).

Cost: one ``bincount`` over the full label, the rest on a grid subsampled to about 3 mm in-plane
(IRCAD 1.7, 512x512x151: see RESULTS / the test that times it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import FILE_PRESETS, PRESETS, LabelMap
from tumorsynth.organs import get_profile

__all__ = [
    "ORGAN_PRIORS",
    "LabelCheckOutput",
    "LabelMapWarning",
    "LabelStats",
    "OrganPrior",
    "PresetFit",
    "check_label_map",
    "check_tumor_capacity",
    "measure_label",
    "rank_presets",
    "suggest_label_map",
]


class LabelMapWarning(UserWarning):
    """The label file is unusual for its label map (but not clearly the wrong map)."""


@dataclass(frozen=True)
class OrganPrior:
    """What an organ looks like in an adult abdominal CT (generous margins).

    ``volume_ml``: whole organ; the lower bound applies only when the field of view does not cut
    the organ (a 30-slice slab holds part of a liver). ``median_hu``: median inside the mask, from
    fatty / non-contrast to arterial phase. ``side``: where the centroid lies relative to the
    body's centre (patient right/left), None when not lateralized.
    """

    volume_ml: tuple[float, float]
    median_hu: tuple[float, float]
    side: Literal["right", "left"] | None = None


#: Adult priors. Volumes: liver 1.0-2.5 L (Heinemann et al., Liver Transpl 1999, standard liver
#: volume), spleen 0.1-0.5 L (Prassopoulos et al., Eur Radiol 1997, CT splenic volume), each
#: kidney 0.1-0.3 L (Cheong et al., Clin Radiol 2007, renal volume), pancreas 0.05-0.12 L
#: (Caglar et al., Clin Imaging 2012, CT pancreas volume); bounds widened about 2x for
#: hepatomegaly, splenomegaly, atrophy and children. HU: liver 40-70 plain / 90-130 portal
#: venous, fatty liver below 0; kidney cortex up to ~250 arterial; the TotalSegmentator example
#: (3 mm, plain) has kidney medians of 12-16 HU and pancreas -7 HU from partial volume.
ORGAN_PRIORS: dict[str, OrganPrior] = {
    "liver": OrganPrior((500.0, 5000.0), (-40.0, 200.0), "right"),
    "spleen": OrganPrior((30.0, 2500.0), (-20.0, 220.0), "left"),
    "kidney": OrganPrior((60.0, 1200.0), (-30.0, 300.0)),  # one or both
    "kidney_right": OrganPrior((40.0, 700.0), (-30.0, 300.0), "right"),
    "kidney_left": OrganPrior((40.0, 700.0), (-30.0, 300.0), "left"),
    "pancreas": OrganPrior((15.0, 300.0), (-100.0, 200.0)),
}
#: Centroid offsets (mm) from the body's centre: beyond FIT_SIDE_MM on the expected side fits,
#: beyond WRONG_SIDE_MM on the other side contradicts (real livers: 59-69 mm right, spleen
#: 108 mm left, kidneys 69-71 mm lateral on the shared CTs).
FIT_SIDE_MM = 15.0
WRONG_SIDE_MM = 25.0
#: The liver's centroid lies above the kidneys' (shared CTs: 32-120 mm higher).
LIVER_ABOVE_KIDNEY_MM = -40.0
_HU_RANGE = (-1100, 1500)
_HU_BIN = 5
_BODY_HU = -500.0
_SAMPLE_MM = 3.0


@dataclass
class LabelStats:
    """Per-id measurements of one label file (ids in ``ids``, rows of the arrays)."""

    where: str
    ids: np.ndarray  # present ids (> 0)
    volume_ml: np.ndarray  # full-resolution volume per id
    centroid_mm: np.ndarray  # (n, 3): offset from the body centre, (right, anterior, superior)
    counts: np.ndarray  # sampled voxels per id
    cut: np.ndarray  # bool: the field of view's edge cuts it
    hu_hist: np.ndarray | None  # (n, bins) sampled HU histogram, None without an image
    box_mm: np.ndarray | None = None  # (n, 2, 3): first and last voxel index x spacing (mm)

    def rows(self, ids: Iterable[int]) -> np.ndarray:
        wanted = set(int(i) for i in ids)
        return np.flatnonzero([int(i) in wanted for i in self.ids])

    def describe(self, ids: Iterable[int], limit: int = 8) -> str:
        """``"1 (1430 mL), 5 (287 mL)"``: the ``limit`` largest, then how many more."""
        rows = sorted(self.rows(ids), key=lambda r: -self.volume_ml[r])
        text = ", ".join(f"{int(self.ids[r])} ({self.volume_ml[r]:.0f} mL)" for r in rows[:limit])
        return text + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


@dataclass(frozen=True)
class _Group:
    """One organ's ids measured together."""

    volume_ml: float
    centroid_mm: np.ndarray
    cut: bool
    median_hu: float | None


def _group(stats: LabelStats, ids: Iterable[int]) -> _Group | None:
    rows = stats.rows(ids)
    if not rows.size or stats.counts[rows].sum() == 0:
        return None
    weights = stats.counts[rows].astype(float)
    centroid = (stats.centroid_mm[rows] * weights[:, None]).sum(0) / weights.sum()
    median = None
    if stats.hu_hist is not None:
        hist = stats.hu_hist[rows].sum(0)
        if hist.sum():
            k = int(np.searchsorted(np.cumsum(hist), hist.sum() / 2.0))
            median = _HU_RANGE[0] + (k + 0.5) * _HU_BIN
    return _Group(float(stats.volume_ml[rows].sum()), centroid, bool(stats.cut[rows].any()), median)


def measure_label(
    label: np.ndarray,
    affine: np.ndarray,
    image: np.ndarray | None = None,
    *,
    where: str = "<label>",
) -> LabelStats:
    """Volume, centroid, cut flag and HU histogram of every id (one pass, subsampled).

    Centroids are in mm from the body's centre (image voxels above -500 HU; the field of view's
    centre without an image), along the patient's right, anterior and superior directions
    (nibabel world space is RAS+, whatever the file's axis codes).
    """
    affine = np.asarray(affine, dtype=float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    stride = tuple(max(1, int(_SAMPLE_MM // s)) for s in spacing)
    sample = tuple(slice(None, None, k) for k in stride)
    sub = np.ascontiguousarray(label[sample])
    if sub.dtype in (np.uint8, np.uint16):  # load_label gives these
        ids = np.flatnonzero(np.bincount(sub.ravel(), minlength=1))
        lut = np.zeros(np.iinfo(sub.dtype).max + 1, dtype=np.int32)
    else:
        ids = np.unique(sub).astype(np.int64)
        lut = None
    ids = ids[ids > 0]
    n = ids.size + 1
    if lut is not None:
        lut[ids] = np.arange(1, n)
        compact = lut[sub]
    else:
        compact = (np.searchsorted(ids, sub) + 1) * np.isin(sub, ids)
    counts = np.bincount(compact.ravel(), minlength=n)
    # volumes from the sampled grid: each sample stands for prod(stride) voxels
    volume_ml = counts[1:] * float(np.prod(stride) * np.prod(spacing)) / 1000.0
    centroid_vox = np.zeros((n, 3))
    cut = np.zeros(n, dtype=bool)
    box = np.zeros((n, 2, 3))
    for axis in range(3):
        size = sub.shape[axis]
        # (id, index along this axis) histogram: one bincount per axis
        shape = [1, 1, 1]
        shape[axis] = size
        pair = compact * size + np.arange(size, dtype=np.int32).reshape(shape)
        hist = np.bincount(pair.ravel(), minlength=n * size).reshape(n, size).astype(float)
        index = np.arange(size) * stride[axis]
        centroid_vox[:, axis] = hist @ index / np.maximum(counts, 1)
        cut |= (hist[:, 0] > 0) | (hist[:, -1] > 0)
        filled = hist > 0
        first = np.argmax(filled, axis=1)
        last = size - 1 - np.argmax(filled[:, ::-1], axis=1)
        box[:, 0, axis] = first * stride[axis] * spacing[axis]
        box[:, 1, axis] = last * stride[axis] * spacing[axis]
    body = np.array(label.shape, dtype=float) / 2.0 - 0.5
    hu_hist = None
    if image is not None and image.shape == label.shape:
        img = np.asarray(image[sample], dtype=np.float32)
        inside = img > _BODY_HU
        if inside.any():
            body = (
                np.array(
                    [
                        (np.arange(img.shape[a]) * stride[a])
                        @ inside.sum(axis=tuple(b for b in range(3) if b != a))
                        for a in range(3)
                    ]
                )
                / inside.sum()
            )
        bins = (_HU_RANGE[1] - _HU_RANGE[0]) // _HU_BIN
        labelled = compact > 0
        hu = np.clip((img[labelled] - _HU_RANGE[0]) // _HU_BIN, 0, bins - 1).astype(np.int64)
        hu_hist = np.bincount(
            compact[labelled].astype(np.int64) * bins + hu, minlength=n * bins
        ).reshape(n, bins)[1:]
    # nibabel world space is RAS+ (+x toward the patient's right, +y anterior, +z superior)
    # whatever the file's axis codes: the livers of the shared CTs, LPS and RAS files alike,
    # lie 59-69 mm toward +x from the body's centre.
    offsets = (centroid_vox[1:] - body) @ affine[:3, :3].T
    return LabelStats(
        where, ids.astype(np.int64), volume_ml, offsets, counts[1:], cut[1:], hu_hist, box[1:]
    )


# -- assessing one map -----------------------------------------------------------------------------
@dataclass
class _Assessment:
    """How one label map fits a file."""

    label_map: LabelMap
    fits: list[str] = field(default_factory=list)  # organ names that match their prior
    contradictions: list[str] = field(default_factory=list)
    lateral_only: list[bool] = field(default_factory=list)  # per contradiction
    unusual: list[str] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return (
            2.0 * len(self.fits)
            + 0.5 * len(self.present)
            - 5.0 * len(self.contradictions)
            - 1.0 * len(self.unknown)
            - 0.1 * len(self.absent)
        )

    @property
    def mirrored(self) -> bool:
        """Every contradiction is a side one: left and right swapped throughout."""
        return bool(self.contradictions) and all(self.lateral_only)


def _organ_groups(lmap: LabelMap, organs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    groups = dict(lmap.organs)
    if lmap.generic_organ:
        groups[organs[0] if organs else "organ"] = tuple(lmap.generic_organ)
    return groups


def _assess(stats: LabelStats, lmap: LabelMap, organs: Sequence[str], mirror: bool) -> _Assessment:
    out = _Assessment(lmap)
    present = {int(i) for i in stats.ids}
    known = lmap.known_ids()
    out.unknown = sorted(present - known)
    measured: dict[str, _Group] = {}
    for name, ids in _organ_groups(lmap, organs).items():
        group = _group(stats, ids)
        if group is None:
            out.absent.append(name)
            continue
        out.present.append(name)
        measured[name] = group
        prior = ORGAN_PRIORS.get(name)
        if prior is None:
            continue
        problems = _against_prior(name, ids, group, prior, mirror)
        for text, lateral in problems[0]:
            out.contradictions.append(text)
            out.lateral_only.append(lateral)
        out.unusual.extend(problems[1])
        if not problems[0] and not problems[1]:
            out.fits.append(name)
    for name, ids in lmap.organs.items():
        for text in _tumors_away_from_organ(stats, lmap, name, ids):
            out.contradictions.append(text)
            out.lateral_only.append(False)
    liver, kidney = measured.get("liver"), measured.get("kidney")
    if liver is not None and kidney is not None:
        above = liver.centroid_mm[2] - kidney.centroid_mm[2]
        if above < LIVER_ABOVE_KIDNEY_MM:
            out.contradictions.append(
                f"its liver lies {-above:.0f} mm below its kidneys (a liver sits above them)"
            )
            out.lateral_only.append(False)
    return out


#: A tumor's box must come this close to its organ's box (mm): tumors grow in or on their organ.
TUMOR_REACH_MM = 10.0


def _tumors_away_from_organ(
    stats: LabelStats, lmap: LabelMap, organ: str, organ_ids: Sequence[int]
) -> list[str]:
    """Tumor ids of ``organ`` whose voxels lie nowhere near the organ (e.g. KiTS's tumor ids 2, 3
    on a TotalSegmentator file are the kidneys, far from its id 1, the spleen)."""
    if stats.box_mm is None:
        return []
    rows = stats.rows(organ_ids)
    if not rows.size:
        return []
    lo = stats.box_mm[rows, 0].min(axis=0) - TUMOR_REACH_MM
    hi = stats.box_mm[rows, 1].max(axis=0) + TUMOR_REACH_MM
    found = []
    for tumor_id in lmap.tumors.get(f"{organ}_tumor", ()):
        for r in stats.rows([tumor_id]):
            t_lo, t_hi = stats.box_mm[r]
            if np.any(t_hi < lo) or np.any(t_lo > hi):
                found.append(
                    f"its {organ}_tumor (id {tumor_id}, {stats.volume_ml[r]:.0f} mL) lies "
                    f"more than {TUMOR_REACH_MM:.0f} mm away from its {organ} "
                    f"(id{'s' if len(organ_ids) > 1 else ''} {', '.join(map(str, organ_ids))})"
                )
    return found


def _against_prior(
    name: str, ids: Sequence[int], group: _Group, prior: OrganPrior, mirror: bool
) -> tuple[list[tuple[str, bool]], list[str]]:
    """(contradictions with a flag 'only the side is wrong', unusual findings) of one organ."""
    label = f"its {name} (id{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})"
    bad: list[tuple[str, bool]] = []
    odd: list[str] = []
    lo, hi = prior.volume_ml
    volume = group.volume_ml
    if volume > hi:
        bad.append((f"{label} is {volume:.0f} mL (a {name} is at most ~{hi:.0f} mL)", False))
    elif volume < lo and not group.cut:
        bad.append(
            (
                f"{label} is {volume:.0f} mL and whole in the field of view (a {name} is "
                f"{lo:.0f}-{hi:.0f} mL)",
                False,
            )
        )
    if (
        group.median_hu is not None
        and not prior.median_hu[0] <= group.median_hu <= prior.median_hu[1]
    ):
        bad.append(
            (
                f"{label} has median {group.median_hu:.0f} HU (a {name} has "
                f"{prior.median_hu[0]:.0f} to {prior.median_hu[1]:.0f} HU)",
                False,
            )
        )
    if prior.side is not None:
        right_mm = float(group.centroid_mm[0]) * (-1.0 if mirror else 1.0)
        toward = right_mm if prior.side == "right" else -right_mm
        where = f"{abs(right_mm):.0f} mm {'right' if right_mm > 0 else 'left'} of the body's centre"
        if toward < -WRONG_SIDE_MM:
            bad.append(
                (
                    f"{label} lies on the patient's wrong side ({where}; a {name} is on the "
                    f"{prior.side})",
                    True,
                )
            )
        elif toward < FIT_SIDE_MM:
            odd.append(f"{label} lies near the midline ({where}; a {name} is on the {prior.side})")
    return bad, odd


# -- the check -------------------------------------------------------------------------------------
@dataclass
class LabelCheckOutput:
    """What :func:`check_label_map` found; ``suggestions``: presets that fit, best first."""

    label_map: str
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


class PresetFit(NamedTuple):
    """How a preset fits a file: ``mirrored`` when it fits only with left and right swapped,
    ``sided`` when an organ with a side (liver, spleen, kidney_left/right) confirms it."""

    name: str
    score: float
    mirrored: bool
    sided: bool
    present: tuple[str, ...]


def rank_presets(stats: LabelStats, organs: Sequence[str] = ()) -> list[PresetFit]:
    """File presets that fit ``stats``, best first.

    A preset fits when no organ contradicts its prior and at least one organ matches its prior
    (or a generic organ is present); one that fits only mirrored ranks below those that fit.
    """
    ranked = []
    for name in FILE_PRESETS:
        assessment = _assess(stats, PRESETS[name], organs, mirror=False)
        mirrored = assessment.mirrored
        if mirrored:
            assessment = _assess(stats, PRESETS[name], organs, mirror=True)
        if assessment.contradictions:
            continue
        if not assessment.fits and not (PRESETS[name].generic_organ and assessment.present):
            continue
        sided = any(
            (prior := ORGAN_PRIORS.get(o)) is not None and prior.side for o in assessment.fits
        )
        score = assessment.score - (10.0 if mirrored else 0.0)
        ranked.append(PresetFit(name, score, mirrored, sided, tuple(assessment.present)))
    ranked.sort(key=lambda fit: -fit.score)
    return ranked


def _preset_phrase(stats: LabelStats, ranked: list[PresetFit], organs: Sequence[str]) -> str:
    if not ranked:
        return "no preset fits it; write a JSON map of its ids"
    best = ranked[0].name
    groups = _organ_groups(PRESETS[best], organs)
    named = ", ".join(
        f"{organ} {'/'.join(map(str, ids))}"
        for organ, ids in groups.items()
        if _group(stats, ids) is not None
    )
    text = f"it looks like {best!r} ({named})"
    # "phantom" is the embedded phantom's own preset: named only when it is the best fit
    others = [fit.name for fit in ranked[1:] if fit.name != "phantom"][:3]
    if others:
        text += f"; {', '.join(repr(o) for o in others)} also fit{'s' if len(others) == 1 else ''}"
    return text


def suggest_label_map(stats: LabelStats, organs: Sequence[str] = ()) -> str:
    """One sentence: which preset(s) this file looks like (for messages)."""
    return _preset_phrase(stats, rank_presets(stats, organs), organs)


def check_label_map(
    label: np.ndarray,
    label_map: LabelMap,
    *,
    affine: np.ndarray,
    image: np.ndarray | None = None,
    organs: Sequence[str] = (),
    where: str = "<label>",
    flag: str = "--label-map",
    stats: LabelStats | None = None,
) -> LabelCheckOutput:
    """Check that ``label`` fits ``label_map``; refuse clear mismatches, warn on unusual files.

    Parameters
    ----------
    label
        Label ids, 3-D (uint8 is fastest).
    label_map
        The map the user gave.
    affine
        Voxel-to-world (mm) of the label: patient directions come from it.
    image
        The CT (HU) on the same grid, for median HU and the body's centre; optional.
    organs
        Organs tumors are asked for (a generic map such as ``msd`` is read as the first).
    where
        The label file's name, for messages.

    Raises
    ------
    InputError
        The map is contradicted by the file (an organ of impossible size, density or side, or
        the requested organ's ids absent) and a preset fits; the message names what was found
        and the preset to pass.

    Examples
    --------
    >>> from tumorsynth.io.phantom import make_phantom
    >>> ct, seg = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    >>> out = check_label_map(seg.array, PRESETS["phantom"], affine=seg.affine, image=ct.array,
    ...                       organs=["liver"])
    >>> out.warnings
    []
    """
    stats = stats if stats is not None else measure_label(label, affine, image, where=where)
    if not stats.ids.size:
        raise InputError(where, "the label file holds no organ (every voxel is 0)")
    plain = _assess(stats, label_map, organs, mirror=False)
    ranked = rank_presets(stats, organs)
    others = [fit for fit in ranked if PRESETS[fit.name] != label_map]
    result = LabelCheckOutput(label_map.name, suggestions=[fit.name for fit in ranked])
    found = f"ids present: {stats.describe(stats.ids)}"
    fix = f"pass {flag} {others[0].name}" if others else f"check {flag}"
    missing = [o for o in organs if o in plain.absent]
    # Refuse only when another preset explains the file: a contradicted map with no better
    # alternative is an unusual scan (a bad segmentation, an organ removed), said in a warning.
    # Left and right swapped throughout is a flipped affine (or situs inversus) unless another
    # preset fits without the swap.
    if plain.contradictions and others:
        if not plain.mirrored or any(fit.sided and not fit.mirrored for fit in others):
            raise InputError(
                where,
                f"does not fit label map {label_map.name!r}: "
                + "; ".join(plain.contradictions)
                + f" ({found}); {_preset_phrase(stats, others, organs)}",
                fix=fix,
            )
    having = [fit for fit in others if set(missing) <= set(fit.present)]
    if missing and having:
        raise InputError(
            where,
            f"label map {label_map.name!r} puts {', '.join(missing)} at ids that this file does "
            f"not hold ({found}); {_preset_phrase(stats, having, organs)}",
            fix=f"pass {flag} {having[0].name}",
        )
    if plain.mirrored:
        result.warnings.append(
            "left and right look swapped (" + "; ".join(plain.contradictions) + "): a "
            "flipped x axis in the affine, or situs inversus"
        )
    elif not plain.mirrored:
        result.warnings.extend(plain.contradictions)
    result.warnings.extend(plain.unusual)
    if plain.unknown:
        hint = ""
        if others:
            best = PRESETS[others[0].name]
            names = {i: n for n, ids in _organ_groups(best, organs).items() for i in ids}
            known = [f"{i} = {names[i]}" for i in plain.unknown if i in names]
            hint = f"; in {best.name!r} " + ", ".join(known) if known else ""
        result.warnings.append(
            f"ids {stats.describe(plain.unknown)} are not in label map {label_map.name!r} "
            f"and are ignored{hint}"
        )
    for text in result.warnings:
        warnings.warn(f"{where}: {text}", LabelMapWarning, stacklevel=2)
    return result


def organ_volumes_ml(
    stats: LabelStats, label_map: LabelMap, organs: Sequence[str]
) -> Mapping[str, float]:
    """Volume (mL) of each requested organ under ``label_map`` (0 when absent)."""
    groups = _organ_groups(label_map, organs)
    return {
        organ: (g.volume_ml if (g := _group(stats, groups.get(organ, ()))) else 0.0)
        for organ in organs
    }


#: At most this fraction of an organ's volume can hold tumors: placement keeps tumors away from
#: the organ's edge and from each other (random sequential packing of spheres jams near 38% of
#: space; the edge margin takes more), so asking for more is refused before any attempt.
MAX_TUMOR_FRACTION = 0.35


def check_tumor_capacity(
    stats: LabelStats,
    label_map: LabelMap,
    requests: Sequence[tuple[str, int | None, str]],
    *,
    where: str = "<label>",
) -> None:
    """Refuse requests whose smallest possible tumors cannot fit in the organ's volume.

    ``requests``: (organ, count or None for the profile's range, size class or ``"mixed"``).
    Each tumor is at least an ellipsoid of 0.75 x the size class's base radius per axis; the
    organ's measured volume times :data:`MAX_TUMOR_FRACTION` bounds their total volume.
    """
    organs = [organ for organ, _, _ in requests]
    volumes = organ_volumes_ml(stats, label_map, organs)
    for organ, count, size in requests:
        profile = get_profile(organ)
        if size == "mixed":
            size = min(
                (s for s, w in profile.mixed_weights.items() if w > 0),
                key=lambda s: profile.rule(s).base_radius_mm,
            )
        rule = profile.rule(size)  # type: ignore[arg-type]
        n = count if count is not None else rule.count[0]
        radius = 0.75 * rule.base_radius_mm
        tumor_ml = 4.0 / 3.0 * np.pi * radius**3 / 1000.0
        organ_ml = volumes.get(organ, 0.0)
        fits = int(organ_ml * MAX_TUMOR_FRACTION // tumor_ml)
        if organ_ml > 0 and n > fits:
            sizes = (
                f"at most {MAX_TUMOR_FRACTION:.0%} of an organ can be tumor (placement keeps "
                "tumors apart and off the organ's edge)"
            )
            if fits == 0:
                raise InputError(
                    where,
                    f"the {organ} is too small for a {size} tumor: it holds {organ_ml:.1f} mL, "
                    f"a {size} tumor is at least {tumor_ml:.1f} mL, and {sizes}",
                    fix="ask for a smaller --size",
                )
            raise InputError(
                where,
                f"{n} {size} tumors cannot fit in the {organ}: it holds {organ_ml:.0f} mL, each "
                f"{size} tumor is at least {tumor_ml:.1f} mL, and {sizes}, so at most {fits} fit "
                "(an upper bound: fewer fit in practice)",
                fix=f"ask for far fewer than --count {fits}, or a smaller --size",
            )
