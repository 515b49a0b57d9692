"""Tumor geometry in mm at native spacing: ellipsoids, elastic deformation, soft edges,
satellites, mass effect and placement inside organs; wall tumors along hollow organs."""

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
from tumorsynth.shapes.wall import WallSpec, centreline_frames, wall_box, wall_field
from tumorsynth.shapes.wall_centreline import (
    TubeBranch,
    TubeCentrelines,
    draw_wall_shape,
    tube_centrelines,
)

__all__ = [
    "Box",
    "Lobe",
    "MassEffectOutput",
    "MassEffectResampling",
    "RandomTumorShape",
    "Satellite",
    "ShapeField",
    "ShapeSpec",
    "TubeBranch",
    "TubeCentrelines",
    "WallSpec",
    "apply_mass_effect",
    "centreline_frames",
    "draw_wall_shape",
    "mass_effect_box",
    "random_rotation",
    "render_shape",
    "shape_box",
    "smooth_random_field",
    "soft_mask",
    "tube_centrelines",
    "wall_box",
    "wall_field",
]
