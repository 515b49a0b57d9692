"""Liver: hypodense metastases / HCC-like lesions (portal venous phase), SynTumor size classes."""

from tumorsynth.organs.profile import (
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    ShapeRules,
    SizeClassRule,
)

__all__ = ["LIVER"]

LIVER = OrganProfile(
    name="liver",
    size_classes={
        "tiny": SizeClassRule(4.0, (3, 10)),
        "small": SizeClassRule(8.0, (3, 10), mass_effect=(0.0, 0.1), multinodular_probability=0.1),
        "medium": SizeClassRule(
            16.0,
            (2, 5),
            mass_effect=(0.1, 0.3),
            satellite_probability=0.15,
            multinodular_probability=0.5,
        ),
        "large": SizeClassRule(
            32.0,
            (1, 3),
            mass_effect=(0.2, 0.4),
            satellite_probability=0.35,
            multinodular_probability=0.8,
        ),
    },
    # Lobulated bodies, multinodular/confluent more often the larger the tumor: calibrated on the
    # 29 real liver tumors of ircad_tumor_masks (benchmarks/shape_calibration.py; median
    # sphericity 0.81 / 0.78 / 0.70 / 0.56 and solidity 0.90 / 0.83 / 0.78 / 0.57 tiny to large,
    # elongation 0.66-0.76, flatness 0.55; smooth ellipsoids measured 0.86-0.87, 0.92-0.97, 0.85).
    shape=ShapeRules(
        axis_jitter=(0.6, 1.4),
        deform_amplitude=(0.08, 0.18),
        deform_scale=(0.4, 0.8),
        lobes=(1, 4),
        lobe_scale=(0.45, 0.7),
        lobe_offset=(0.5, 0.85),
        lobe_reach=1.3,
        multinodular_lobes=(4, 7),
        multinodular_scale=(0.55, 0.8),
        multinodular_reach=1.75,
    ),
    # Large liver tumors reach the capsule (IRCAD 1.17's do); a small bulge is allowed. Where no
    # site 0.6 radius deep remains, large tumors may sit at the surface and medium and large ones
    # may be confluent (one IRCAD liver holds 349, 24, 14, 12 and 10 mL tumors).
    placement=PlacementRules(
        depth_fraction=0.6,
        min_depth_mm=4.0,
        bulge_mm=2.0,
        vessel_clearance_mm=6.0,
        surface_sizes=("large",),
        surface_depth_fraction=0.3,
        confluent_sizes=("medium", "large"),
        confluent_overlap=0.5,
    ),
    # IRCAD 1.17 (two real tumors, 79 and 86 mL): liver 104 HU; tumor 0-4 mm from the edge
    # 76-91 HU (-13..-28), 10-20 mm deep 37-58 HU (-46..-67); 10-90% edge rise 5-6.5 mm of the
    # mean profile (benchmarks/calibration.py), heterogeneity (4 mm low-pass std) 17-86 HU.
    appearance=AppearanceRules(
        contrast_hu=(-28.0, -10.0),
        centre_drop_hu=(35.0, 65.0),
        centre_power=(0.8, 1.4),
        centre_depth_mm=(4.0, 8.0),
        texture_hu=(12.0, 38.0),
        texture_scale_mm=(4.0, 10.0),
        edge_width_mm=(0.4, 1.4),
        necrosis_probability=0.35,
        necrosis_hu=(15.0, 40.0),
        rim_probability=0.25,
        rim_hu=(-30.0, 20.0),
        dense_spot_probability=0.2,
        noise_ratio=(0.85, 1.2),
        cyst_probability=0.0,
        unenhanced_hu=55.0,
        enhanced_hu=110.0,
    ),
    expected_parenchyma_hu=(30.0, 180.0),
)
