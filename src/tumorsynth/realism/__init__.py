"""Realism measurements: appearance statistics of real and synthetic lesions."""

from tumorsynth.realism.appearance import LesionAppearance, lesion_appearance

__all__ = ["LesionAppearance", "lesion_appearance"]
