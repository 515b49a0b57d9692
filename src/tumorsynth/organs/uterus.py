"""Uterus: endometrial (and cervical) cancer, masses hypoattenuating to enhancing myometrium.

A solid organ: tumors are ellipsoids as in the liver and kidney. Endometrial cancer is a mass
in the endometrial cavity, in the middle of the uterine body, that may invade the myometrium;
placement therefore asks for deep centres (high ``depth_fraction``). The numbers are typical
textbook values of CT of the female pelvis, marked as such; none is quoted from a paper unless
named.

The uterus masks (AbdomenAtlas ``uterus``; TotalSegmentator v2's ``total`` task has no uterus)
do not separate the cervix from the body: a tumor whose centre falls in the lower part of the
mask is a cervical mass, which on CT is hypoattenuating too, so one profile covers both. A
cervix-only variant would restrict :attr:`PlacementRules.slice_range` to the inferior part, e.g.
``(0.0, 0.35)``; that range is a fraction of the organ's extent along the scan's third voxel
axis, which is inferior-to-superior only when that axis points superiorly (RAS/LPS NIfTI, not
every file), and an anteverted uterus puts the cervix posterior as much as inferior, so it is
not set here.
"""

from tumorsynth.organs.profile import (
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    ShapeRules,
    SizeClassRule,
)

__all__ = ["UTERUS"]

UTERUS = OrganProfile(
    name="uterus",
    # Endometrial cancers range from a few mm (a thickened endometrium) to masses over 5 cm
    # that distend the cavity; 2 cm is the tumor-size cutoff of the Mayo low-risk criteria
    # (typical). Each axis is drawn in 0.75-1.25 x base: diameters tiny 6-10, small 12-20,
    # medium 21-35, large 36-60 mm. One primary per case.
    size_classes={
        "tiny": SizeClassRule(4.0, (1, 1)),
        "small": SizeClassRule(8.0, (1, 1), mass_effect=(0.0, 0.1)),
        "medium": SizeClassRule(14.0, (1, 1), mass_effect=(0.1, 0.3)),
        "large": SizeClassRule(24.0, (1, 1), mass_effect=(0.2, 0.4)),
    },
    # Polypoid to irregular intracavitary masses: lobulated, not multinodular (no calibration
    # data; the pancreas's lobulation).
    shape=ShapeRules(
        axis_jitter=(0.7, 1.3),
        deform_amplitude=(0.08, 0.2),
        lobes=(0, 2),
        lobe_scale=(0.45, 0.7),
        lobe_offset=(0.5, 0.85),
        lobe_reach=1.3,
    ),
    # Central: the cavity lies in the middle of the uterine body, so a centre needs 80% of the
    # radius of uterus around it. A uterus is about 8 x 5 x 4 cm (typical), only ~2 cm deep at
    # its middle: medium and large masses, which distend the cavity and thin the myometrium,
    # may sit nearer the surface when no deep site remains, and bulge 4 mm (deep myometrial
    # invasion reaching the serosa).
    placement=PlacementRules(
        depth_fraction=0.8,
        min_depth_mm=3.0,
        bulge_mm=4.0,
        vessel_clearance_mm=4.0,
        surface_sizes=("medium", "large"),
        surface_depth_fraction=0.4,
    ),
    # Myometrium enhances to about 90-130 HU in the portal venous phase and is ~40-50 HU
    # without contrast (typical); endometrial and cervical cancer enhance less and read
    # 30-70 HU darker than myometrium (typical), heterogeneous when large, sometimes necrotic;
    # margins against the invaded myometrium are ill-defined.
    appearance=AppearanceRules(
        contrast_hu=(-70.0, -30.0),
        centre_drop_hu=(0.0, 20.0),
        texture_hu=(5.0, 15.0),
        texture_scale_mm=(3.0, 7.0),
        edge_width_mm=(0.8, 2.0),
        necrosis_probability=0.15,
        necrosis_hu=(10.0, 35.0),
        rim_probability=0.0,
        dense_spot_probability=0.0,
        cyst_probability=0.0,
        noise_ratio=(1.05, 1.4),
        unenhanced_hu=45.0,
        enhanced_hu=110.0,
    ),
    # Most endometrial cancers are found at stage I (about two thirds, typical).
    mixed_weights={"tiny": 0.2, "small": 0.35, "medium": 0.3, "large": 0.15},
    # Plain myometrium ~40 HU up to heterogeneous arterial-phase enhancement near 200 HU.
    expected_parenchyma_hu=(20.0, 200.0),
    # Arcuate and parametrial vessels enhance well above the myometrium (typical).
    vessel_threshold_hu=60.0,
)
