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
        "small": SizeClassRule(8.0, (1, 3), mass_effect=(0.0, 0.1), multinodular_probability=0.2),
        "medium": SizeClassRule(14.0, (1, 2), mass_effect=(0.1, 0.3), multinodular_probability=0.2),
        "large": SizeClassRule(24.0, (1, 1), mass_effect=(0.2, 0.4), multinodular_probability=0.3),
    },
    # RCC: round overall (KiTS23: elongation 0.87-0.89, flatness 0.64-0.76) but lobulated
    # (sphericity 0.57-0.78, solidity 0.77-0.89 over 5 tumors; smooth ellipsoids measured 0.87
    # and 0.92-0.96), so the axes keep SynTumor's jitter and the lobes do the work.
    shape=ShapeRules(
        deform_amplitude=(0.06, 0.15),
        deform_scale=(0.4, 0.8),
        lobes=(1, 3),
        lobe_scale=(0.45, 0.7),
        lobe_offset=(0.5, 0.85),
        lobe_reach=1.3,
        multinodular_lobes=(3, 5),
        multinodular_scale=(0.55, 0.75),
        multinodular_reach=1.6,
    ),
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
        texture_hu=(12.0, 40.0),
        texture_scale_mm=(3.0, 8.0),
        edge_width_mm=(0.5, 1.2),
        necrosis_probability=0.5,
        necrosis_hu=(10.0, 35.0),
        rim_probability=0.15,
        dense_spot_probability=0.05,
        cyst_probability=0.25,
        cyst_hu=(0.0, 20.0),
        cyst_edge_width_mm=(0.2, 0.5),
        noise_ratio=(1.2, 1.7),
        unenhanced_hu=30.0,
        enhanced_hu=170.0,
    ),
    expected_parenchyma_hu=(10.0, 260.0),
    vessel_threshold_hu=60.0,
)
