"""What organs look like in an adult abdominal CT, and how well one label map fits a measured file.

:func:`assess_map` reads a file's :class:`~tumorsynth.organs.label_stats.LabelStats` under one
label map: which organs match their :data:`ORGAN_PRIORS` (volume, median HU, side of the body),
which contradict them, which ids the map does not know. The label-map check
(:mod:`tumorsynth.organs.label_check`) scores every preset with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tumorsynth.io.label_maps import LabelMap
from tumorsynth.organs.label_stats import LabelStats, OrganStats

__all__ = [
    "FIT_SIDE_MM",
    "LIVER_ABOVE_KIDNEY_MM",
    "ORGAN_PRIORS",
    "TUMOR_REACH_MM",
    "WRONG_SIDE_MM",
    "MapAssessment",
    "OrganPrior",
    "assess_map",
    "organ_groups",
]


@dataclass(frozen=True)
class OrganPrior:
    """What an organ looks like in an adult abdominal CT (generous margins).

    ``volume_ml``: whole organ; the lower bound applies only when the field of view does not cut
    the organ (a 30-slice slab holds part of a liver). ``median_hu``: median inside the whole
    mask, from fatty / non-contrast to arterial phase. ``side``: where the centroid lies relative
    to the body's centre (patient right/left), None when not lateralized.
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
#: These HU ranges are wider than the organ profiles' ``expected_parenchyma_hu`` on purpose: that
#: one is the median of the calm interior and only warns; this one is the median of the whole
#: mask (edges, vessels, fat) and outside it a map is contradicted. A test keeps each range
#: containing its profile's.
#: Hollow organs and the uterus (typical textbook values, no single source): the colon is about
#: 1.5 m long and 3-8 cm wide, 0.3-3 L with its lumen (CT colonography distends it to 1-3 L;
#: the TotalSegmentator example holds 351 mL of colon in a 9 cm slab, measured), rarely whole
#: in an abdominal field of view, its mask's median anywhere from air (-900 HU) to soft tissue
#: (that example: -409 HU, measured); the esophagus is about 25 cm long and 1.5-2 cm wide
#: collapsed, 15-60 mL whole, mostly cut by an abdominal or chest field of view, soft tissue
#: unless air-filled; the uterus is 30-90 mL (nulliparous) to ~150 mL (multiparous),
#: 15-40 mL after menopause (ultrasound volumes, typical), over 1 L with large fibroids,
#: myometrium 40-60 HU plain to 90-130 HU portal venous. Bounds widened as above; none of
#: the three is lateralized.
ORGAN_PRIORS: dict[str, OrganPrior] = {
    "liver": OrganPrior((500.0, 5000.0), (-40.0, 200.0), "right"),
    "spleen": OrganPrior((30.0, 2500.0), (-20.0, 220.0), "left"),
    "kidney": OrganPrior((60.0, 1200.0), (-30.0, 300.0)),  # one or both
    "kidney_right": OrganPrior((40.0, 700.0), (-30.0, 300.0), "right"),
    "kidney_left": OrganPrior((40.0, 700.0), (-30.0, 300.0), "left"),
    "pancreas": OrganPrior((15.0, 300.0), (-100.0, 200.0)),
    "colon": OrganPrior((100.0, 6000.0), (-950.0, 250.0)),
    "esophagus": OrganPrior((5.0, 150.0), (-900.0, 250.0)),
    "uterus": OrganPrior((8.0, 2500.0), (-20.0, 220.0)),
}
#: Centroid offsets (mm) from the body's centre: beyond FIT_SIDE_MM on the expected side fits,
#: beyond WRONG_SIDE_MM on the other side contradicts (real livers: 59-69 mm right, spleen
#: 108 mm left, kidneys 69-71 mm lateral on the shared CTs).
FIT_SIDE_MM = 15.0
WRONG_SIDE_MM = 25.0
#: The liver's centroid lies above the kidneys' (shared CTs: 32-120 mm higher).
LIVER_ABOVE_KIDNEY_MM = -40.0
#: A tumor's box must come this close to its organ's box (mm): tumors grow in or on their organ.
TUMOR_REACH_MM = 10.0


@dataclass
class MapAssessment:
    """How one label map fits a file (organ names; ``unknown``: ids the map does not define)."""

    label_map: LabelMap
    fits: list[str] = field(default_factory=list)  # organs that match their prior
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

    def contradict(self, text: str, *, lateral: bool = False) -> None:
        self.contradictions.append(text)
        self.lateral_only.append(lateral)


def organ_groups(lmap: LabelMap, organs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Organ name -> ids under ``lmap``; a generic organ (``msd``) is read as ``organs[0]``."""
    groups = dict(lmap.organs)
    if lmap.generic_organ:
        groups[organs[0] if organs else "organ"] = tuple(lmap.generic_organ)
    return groups


def assess_map(
    stats: LabelStats, lmap: LabelMap, organs: Sequence[str], *, mirror: bool = False
) -> MapAssessment:
    """Judge every organ of ``lmap`` against its prior (``mirror``: with left and right swapped)."""
    out = MapAssessment(lmap)
    out.unknown = sorted({int(i) for i in stats.ids} - lmap.known_ids())
    measured: dict[str, OrganStats] = {}
    for name, ids in organ_groups(lmap, organs).items():
        group = stats.group(ids)
        if group is None:
            out.absent.append(name)
            continue
        out.present.append(name)
        measured[name] = group
        prior = ORGAN_PRIORS.get(name)
        if prior is None:
            continue
        contradictions, unusual = _against_prior(name, ids, group, prior, mirror)
        for text, lateral in contradictions:
            out.contradict(text, lateral=lateral)
        out.unusual.extend(unusual)
        if not contradictions and not unusual:
            out.fits.append(name)
    for name, ids in lmap.organs.items():
        for text in _tumors_away_from_organ(stats, lmap, name, ids):
            out.contradict(text)
    liver, kidney = measured.get("liver"), measured.get("kidney")
    if liver is not None and kidney is not None:
        above = liver.centroid_mm[2] - kidney.centroid_mm[2]
        if above < LIVER_ABOVE_KIDNEY_MM:
            out.contradict(
                f"its liver lies {-above:.0f} mm below its kidneys (a liver sits above them)"
            )
    return out


def _id_phrase(name: str, ids: Sequence[int]) -> str:
    """``"its kidney (ids 2, 3)"``."""
    return f"its {name} (id{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})"


def _tumors_away_from_organ(
    stats: LabelStats, lmap: LabelMap, organ: str, organ_ids: Sequence[int]
) -> list[str]:
    """Tumor ids of ``organ`` whose voxels lie nowhere near the organ (e.g. KiTS's tumor ids 2, 3
    on a TotalSegmentator file are the kidneys, far from its id 1, the spleen)."""
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
                    f"more than {TUMOR_REACH_MM:.0f} mm away from {_id_phrase(organ, organ_ids)}"
                )
    return found


def _against_prior(
    name: str, ids: Sequence[int], group: OrganStats, prior: OrganPrior, mirror: bool
) -> tuple[list[tuple[str, bool]], list[str]]:
    """(contradictions with a flag 'only the side is wrong', unusual findings) of one organ."""
    label = _id_phrase(name, ids)
    bad: list[tuple[str, bool]] = []
    odd: list[str] = []
    lo, hi = prior.volume_ml
    volume = group.volume_ml
    if volume > hi:
        bad.append((f"{label} is {volume:.0f} mL (a {name} is at most ~{hi:.0f} mL)", False))
    elif volume < lo and not group.cut:
        text = f"{label} is {volume:.0f} mL and whole in the field of view (a {name} is "
        bad.append((text + f"{lo:.0f}-{hi:.0f} mL)", False))
    hu_lo, hu_hi = prior.median_hu
    if group.median_hu is not None and not hu_lo <= group.median_hu <= hu_hi:
        text = f"{label} has median {group.median_hu:.0f} HU (a {name} has "
        bad.append((text + f"{hu_lo:.0f} to {hu_hi:.0f} HU)", False))
    if prior.side is not None:
        right_mm = float(group.centroid_mm[0]) * (-1.0 if mirror else 1.0)
        toward = right_mm if prior.side == "right" else -right_mm
        where = f"{abs(right_mm):.0f} mm {'right' if right_mm > 0 else 'left'} of the body's centre"
        if toward < -WRONG_SIDE_MM:
            text = f"{label} lies on the patient's wrong side ({where}; a {name} is on the "
            bad.append((text + f"{prior.side})", True))
        elif toward < FIT_SIDE_MM:
            odd.append(f"{label} lies near the midline ({where}; a {name} is on the {prior.side})")
    return bad, odd
