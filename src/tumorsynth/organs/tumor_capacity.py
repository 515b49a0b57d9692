"""Can the requested tumors fit in their organs? A bound from the organ's measured volume.

Placement of too many or too large tumors fails only after many attempts; this check refuses such
a request at once, from the volumes :func:`~tumorsynth.organs.label_stats.measure_label` gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import LabelMap
from tumorsynth.organs import get_profile
from tumorsynth.organs.label_priors import organ_groups
from tumorsynth.organs.label_stats import LabelStats

__all__ = ["MAX_TUMOR_FRACTION", "check_tumor_capacity", "organ_volumes_ml"]

#: At most this fraction of an organ's volume can hold tumors: placement keeps tumors away from
#: the organ's edge and from each other (random sequential packing of spheres jams near 38% of
#: space; the edge margin takes more), so asking for more is refused before any attempt.
MAX_TUMOR_FRACTION = 0.35


def organ_volumes_ml(
    stats: LabelStats, label_map: LabelMap, organs: Sequence[str]
) -> Mapping[str, float]:
    """Volume (mL) of each requested organ under ``label_map`` (0 when absent)."""
    groups = organ_groups(label_map, organs)
    return {
        organ: (g.volume_ml if (g := stats.group(groups.get(organ, ()))) else 0.0)
        for organ in organs
    }


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
        if profile.wall is not None:
            continue  # a tube's volume says little: the wall shape checks its length and radius
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
