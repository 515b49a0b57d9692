"""Does a label file fit its label map? Every preset scored against the file; refuse or warn.

A wrong label map is silent: with ``totalsegmentator`` on an IRCAD/MSD file (1 liver, 5 kidney)
the kidneys become "liver". :func:`check_label_map` measures every label id once
(:func:`~tumorsynth.organs.label_stats.measure_label`), judges the organs the map names against
adult priors (:func:`~tumorsynth.organs.label_priors.assess_map`), scores every preset the same
way (:func:`rank_presets`), and

- refuses (:class:`~tumorsynth.errors.InputError`) when the map is contradicted (an organ on the
  wrong side, of impossible size or density) and another preset fits the file, naming it;
- warns (:class:`LabelMapWarning`) when something is merely unusual (ids the map does not know,
  an organ near the midline, left and right swapped throughout).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import FILE_PRESETS, PRESETS, LabelMap
from tumorsynth.organs.label_priors import ORGAN_PRIORS, assess_map, organ_groups
from tumorsynth.organs.label_stats import LabelStats, measure_label

__all__ = [
    "LabelCheckOutput",
    "LabelMapWarning",
    "PresetFit",
    "check_label_map",
    "check_label_stats",
    "rank_presets",
    "suggest_label_map",
]


class LabelMapWarning(UserWarning):
    """The label file is unusual for its label map (but not clearly the wrong map)."""


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
        assessment = assess_map(stats, PRESETS[name], organs)
        mirrored = assessment.mirrored
        if mirrored:
            assessment = assess_map(stats, PRESETS[name], organs, mirror=True)
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
    named = ", ".join(
        f"{organ} {'/'.join(map(str, ids))}"
        for organ, ids in organ_groups(PRESETS[best], organs).items()
        if stats.group(ids) is not None
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
    flag
        The option that named the map, for messages.
    stats
        ``measure_label(label, affine, image)`` when the caller already has it (the label is
        then not measured again); :func:`check_label_stats` takes it alone.

    Raises
    ------
    InputError
        The map is contradicted by the file (an organ of impossible size, density or side, or
        the requested organ's ids absent) and a preset fits; the message names what was found
        and the preset to pass.

    Examples
    --------
    >>> from tumorsynth.phantom import make_phantom
    >>> ct, seg = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    >>> out = check_label_map(seg.array, PRESETS["phantom"], affine=seg.affine, image=ct.array,
    ...                       organs=["liver"])
    >>> out.warnings
    []
    """
    if stats is None:
        stats = measure_label(label, affine, image, where=where)
    return check_label_stats(stats, label_map, organs=organs, flag=flag)


def check_label_stats(
    stats: LabelStats,
    label_map: LabelMap,
    *,
    organs: Sequence[str] = (),
    flag: str = "--label-map",
) -> LabelCheckOutput:
    """:func:`check_label_map` on a label already measured (messages name ``stats.where``)."""
    where = stats.where
    if not stats.ids.size:
        raise InputError(where, "the label file holds no organ (every voxel is 0)")
    plain = assess_map(stats, label_map, organs)
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
    else:
        result.warnings.extend(plain.contradictions)
    result.warnings.extend(plain.unusual)
    if plain.unknown:
        hint = ""
        if others:
            best = PRESETS[others[0].name]
            names = {i: n for n, ids in organ_groups(best, organs).items() for i in ids}
            known = [f"{i} = {names[i]}" for i in plain.unknown if i in names]
            hint = f"; in {best.name!r} " + ", ".join(known) if known else ""
        result.warnings.append(
            f"ids {stats.describe(plain.unknown)} are not in label map {label_map.name!r} "
            f"and are ignored{hint}"
        )
    for text in result.warnings:
        warnings.warn(f"{where}: {text}", LabelMapWarning, stacklevel=3)
    return result
