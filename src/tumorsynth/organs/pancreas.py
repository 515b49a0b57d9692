"""Pancreas: PDAC-like hypodense masses with ill-defined margins; smaller size classes."""

from tumorsynth.organs.profile import (
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    ShapeRules,
    SizeClassRule,
)

__all__ = ["PANCREAS"]

# The pancreas is 15-25 mm thick, so "large" here is a 2.5-5 cm mass that expands the gland.
PANCREAS = OrganProfile(
    name="pancreas",
    size_classes={
        "tiny": SizeClassRule(4.0, (1, 3)),
        "small": SizeClassRule(7.0, (1, 2), mass_effect=(0.0, 0.1)),
        "medium": SizeClassRule(12.0, (1, 2), mass_effect=(0.1, 0.25)),
        "large": SizeClassRule(18.0, (1, 1), mass_effect=(0.15, 0.3), satellite_probability=0.1),
    },
    # No real pancreas masks to calibrate on: the liver's lobulation, without multinodular forms.
    shape=ShapeRules(
        deform_amplitude=(0.1, 0.25),
        satellite_count=(1, 2),
        lobes=(1, 3),
        lobe_scale=(0.45, 0.7),
        lobe_offset=(0.5, 0.85),
        lobe_reach=1.3,
    ),
    # PDAC expands the gland contour: centres need only ~40% of the radius inside, and the mass
    # may bulge 5 mm into the surrounding fat.
    placement=PlacementRules(
        depth_fraction=0.4, min_depth_mm=2.0, bulge_mm=5.0, vessel_clearance_mm=4.0
    ),
    appearance=AppearanceRules(
        contrast_hu=(-45.0, -15.0),
        centre_drop_hu=(0.0, 20.0),
        texture_hu=(5.0, 14.0),
        texture_scale_mm=(2.5, 5.0),
        edge_width_mm=(1.5, 3.0),
        necrosis_probability=0.1,
        rim_probability=0.0,
        dense_spot_probability=0.0,
        cyst_probability=0.1,
        noise_ratio=(1.05, 1.4),
        unenhanced_hu=40.0,
        enhanced_hu=110.0,
    ),
    mixed_weights={"tiny": 0.25, "small": 0.35, "medium": 0.3, "large": 0.1},
    expected_parenchyma_hu=(0.0, 200.0),
)
