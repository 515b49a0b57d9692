"""Organ profiles (size classes, placement, intensity model) and per-scan organ analysis."""

from __future__ import annotations

from tumorsynth.errors import InputError
from tumorsynth.organs.colon import COLON
from tumorsynth.organs.esophagus import ESOPHAGUS
from tumorsynth.organs.kidney import KIDNEY
from tumorsynth.organs.liver import LIVER
from tumorsynth.organs.pancreas import PANCREAS
from tumorsynth.organs.profile import (
    EARLY_STAGE_DIAMETER_MM,
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    ShapeRules,
    SizeClassRule,
    WallRules,
    equivalent_diameter_mm,
    is_early_stage,
)
from tumorsynth.organs.uterus import UTERUS

__all__ = [
    "EARLY_STAGE_DIAMETER_MM",
    "AppearanceRules",
    "OrganProfile",
    "PlacementRules",
    "ShapeRules",
    "SizeClassRule",
    "WallRules",
    "equivalent_diameter_mm",
    "get_profile",
    "is_early_stage",
    "register_profile",
    "registered_organs",
]

_PROFILES: dict[str, OrganProfile] = {
    p.name: p for p in (LIVER, PANCREAS, KIDNEY, COLON, ESOPHAGUS, UTERUS)
}


def register_profile(profile: OrganProfile, *, replace: bool = False) -> None:
    """Make ``profile`` available by name (adding an organ is adding a profile)."""
    if profile.name in _PROFILES and not replace:
        raise ValueError(f"organ profile {profile.name!r} exists; pass replace=True to override")
    _PROFILES[profile.name] = profile


def get_profile(organ: str | OrganProfile) -> OrganProfile:
    """The profile of ``organ``; raises naming the organs that have one."""
    if isinstance(organ, OrganProfile):
        return organ
    try:
        return _PROFILES[organ]
    except KeyError:
        raise InputError(
            f"organ {organ!r}",
            f"no organ profile; known organs are {sorted(_PROFILES)}",
            fix="register_profile() adds one",
        ) from None


def registered_organs() -> tuple[str, ...]:
    return tuple(sorted(_PROFILES))
