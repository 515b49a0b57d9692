"""Kidney: heterogeneous RCC-like masses (often exophytic) and simple cysts near water density."""

from tumorsynth.organs.profile import (
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    ShapeRules,
    SizeClassRule,
)

__all__ = ["KIDNEY"]

KIDNEY = OrganProfile(
    name="kidney",
    size_classes={
        "tiny": SizeClassRule(4.0, (1, 4)),
        "small": SizeClassRule(8.0, (1, 3), mass_effect=(0.0, 0.1)),
        "medium": SizeClassRule(14.0, (1, 2), mass_effect=(0.1, 0.3)),
        "large": SizeClassRule(24.0, (1, 1), mass_effect=(0.2, 0.4)),
    },
    shape=ShapeRules(deform_amplitude=(0.04, 0.12)),
    placement=PlacementRules(
        depth_fraction=0.5,
        min_depth_mm=2.0,
        bulge_mm=3.0,
        exophytic_probability=0.5,
        vessel_clearance_mm=4.0,
    ),
    # Nephrographic/portal phase: clear-cell RCC enhances less than cortex and heterogeneously,
    # larger ones with necrosis; cysts are water-dense (0-20 HU) with sharp margins.
    appearance=AppearanceRules(
        contrast_hu=(-90.0, -30.0),
        centre_drop_hu=(0.0, 30.0),
        texture_hu=(8.0, 30.0),
        texture_scale_mm=(2.5, 6.0),
        edge_width_mm=(0.5, 1.2),
        necrosis_probability=0.5,
        necrosis_hu=(10.0, 35.0),
        rim_probability=0.15,
        dense_spot_probability=0.05,
        cyst_probability=0.25,
        cyst_hu=(0.0, 20.0),
        cyst_edge_width_mm=(0.2, 0.5),
        unenhanced_hu=30.0,
        enhanced_hu=170.0,
    ),
    expected_parenchyma_hu=(10.0, 260.0),
    vessel_threshold_hu=60.0,
)
