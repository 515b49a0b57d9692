"""Tumor geometry in mm at native spacing: ellipsoids, elastic deformation, soft edges,
satellites, mass effect and placement inside organs."""

from tumorsynth.box import Box
from tumorsynth.shapes.ellipsoid import (
    Lobe,
    MassEffectResampling,
    Satellite,
    ShapeField,
    ShapeSpec,
    render_shape,
    shape_box,
    soft_mask,
)
from tumorsynth.shapes.fields import smooth_random_field
from tumorsynth.shapes.mass_effect import MassEffectOutput, apply_mass_effect, mass_effect_box
from tumorsynth.shapes.placement import RandomTumorShape, random_rotation

__all__ = [
    "Box",
    "Lobe",
    "MassEffectOutput",
    "MassEffectResampling",
    "RandomTumorShape",
    "Satellite",
    "ShapeField",
    "ShapeSpec",
    "apply_mass_effect",
    "mass_effect_box",
    "random_rotation",
    "render_shape",
    "shape_box",
    "smooth_random_field",
    "soft_mask",
]
