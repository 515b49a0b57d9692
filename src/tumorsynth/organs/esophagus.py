"""Esophagus: esophageal cancer as wall thickening over a segment, often several cm long.

The esophagus mask (TotalSegmentator's ``esophagus``, AbdomenAtlas's ``esophagus``) holds the
wall and a mostly collapsed lumen (a little air or fluid), so its tumors are wall tumors along
the organ's course (:class:`~tumorsynth.organs.profile.WallRules`), never ellipsoids. The numbers
are typical textbook values of CT of the esophagus, marked as such; none is quoted from a paper
unless named.

Size classes of a wall tumor
----------------------------
``tiny`` and ``small`` are early cancers (T1-T2: superficial or confined to the wall): focal,
eccentric thickening over a short segment, under 1 cm thick. ``medium`` and ``large`` are the
advanced cancers most patients present with (T3-T4): long, often circumferential, growing out
into the periesophageal fat (the esophagus has no serosa). Early stage for a wall tumor means
its size class (tiny, small), not the 2 cm equivalent diameter of solid organs.

The inscribed radius of a (collapsed) esophagus mask is only about 5-10 mm, so the inward
thickness is capped by it (``min_lumen_mm`` stays open) and the tumor's bulk comes from its
length and outgrowth: a wall 5-20 mm thick is ``thickness_mm`` (inward) plus ``outgrowth_mm``.

``SizeClassRule.base_radius_mm`` is nominal, as for the colon (see
:mod:`tumorsynth.organs.colon`): half a typical thickness of the class, read only for the
largest-first order and the capacity check's volume bound, never by the wall shape nor written
to records. The radius of the sphere of a typical tumor's volume is larger (Monte Carlo over
these rules on an esophagus of 7-10 mm radius: median tiny 7.3-8.3, small 9.2-10.9, medium
12.6-15.4, large 16.1-19.5 mm).
"""

from tumorsynth.organs.profile import (
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    SizeClassRule,
    WallRules,
)

__all__ = ["ESOPHAGUS"]

ESOPHAGUS = OrganProfile(
    name="esophagus",
    # One primary per case (multifocal squamous cell carcinoma exists but is rarely separable
    # on CT, typical).
    size_classes={
        "tiny": SizeClassRule(2.5, (1, 1)),
        "small": SizeClassRule(3.5, (1, 1)),
        "medium": SizeClassRule(5.0, (1, 1)),
        "large": SizeClassRule(6.0, (1, 1)),
    },
    wall=WallRules(
        # Esophageal cancers at presentation are typically 3-8 cm long, longer ones (over 5 cm)
        # more often advanced (typical); superficial (T1) ones are 1-2 cm.
        length_mm={
            "tiny": (8.0, 20.0),
            "small": (15.0, 35.0),
            "medium": (30.0, 60.0),
            "large": (50.0, 100.0),
        },
        # Normal esophageal wall is up to 3 mm distended and up to 5 mm collapsed; over 5 mm is
        # abnormal (typical CT criterion, issue 15); advanced cancers 1-2 cm and more (typical).
        thickness_mm={
            "tiny": (4.0, 6.0),
            "small": (5.0, 9.0),
            "medium": (7.0, 12.0),
            "large": (9.0, 16.0),
        },
        # Early cancers are eccentric; advanced ones mostly circumferential (typical).
        annular_probability={"tiny": 0.0, "small": 0.15, "medium": 0.55, "large": 0.85},
        arc_deg=(90.0, 270.0),
        # Shouldered (abrupt) margins of a malignant stricture (typical).
        shoulder_fraction=(0.08, 0.2),
        # No serosa: periesophageal fat invasion (T3) is common at presentation (typical); the
        # outward growth adds to the inward thickness, which a collapsed esophagus caps early.
        outgrowth_mm=(0.5, 5.0),
        min_lumen_mm=1.0,
        # Inscribed radius of a collapsed esophagus: about 5-10 mm (outer diameter ~2 cm,
        # flattened; typical); under 4 mm the mask cannot hold a wall tumor.
        min_radius_mm=4.0,
    ),
    # Wall tumors do not use depth, lobes or vessel clearance: ``bulge_mm`` = the largest
    # outgrowth; two tumors keep 1 cm apart.
    placement=PlacementRules(
        depth_fraction=0.0,
        min_depth_mm=0.0,
        bulge_mm=5.0,
        vessel_clearance_mm=0.0,
        gap_mm=10.0,
    ),
    # Esophageal cancer: soft tissue iso- to mildly hyperenhancing to the normal wall, about
    # 35-45 HU without contrast and 60-100 HU in the portal venous phase (typical); large ones
    # heterogeneous with a little necrosis or ulceration. The measured "parenchyma" of a
    # collapsed esophagus is mostly wall: about 35 HU plain, ~70 HU portal venous (typical, with
    # partial volume). Contrast -10..+30 HU at 70 HU puts the tumor at 60-100 HU.
    appearance=AppearanceRules(
        contrast_hu=(-10.0, 30.0),
        centre_drop_hu=(0.0, 15.0),
        texture_hu=(4.0, 14.0),
        texture_scale_mm=(2.5, 6.0),
        edge_width_mm=(0.6, 1.5),
        necrosis_probability=0.1,
        necrosis_hu=(10.0, 30.0),
        rim_probability=0.0,
        dense_spot_probability=0.0,
        cyst_probability=0.0,
        noise_ratio=(1.0, 1.3),
        unenhanced_hu=35.0,
        enhanced_hu=70.0,
    ),
    # Most esophageal cancers present advanced (typical: under a third localized).
    mixed_weights={"tiny": 0.1, "small": 0.2, "medium": 0.4, "large": 0.3},
    # As the colon: the median of the in-range voxels, so only a mask without tissue or one
    # dominated by contrast falls outside.
    expected_parenchyma_hu=(20.0, 160.0),
    # The esophagus runs beside the aorta; its mask catches aortic partial volume (150-400 HU
    # with contrast) more than its wall ever enhances (typical): those count as vessels.
    vessel_threshold_hu=100.0,
    # T1-T2 cancers (module docstring): early by class, not by the 2 cm diameter of solid organs
    early_stage_sizes=("tiny", "small"),
    # As the colon (see there): the wall's soft tissue, above fluid, fat and the partial volume
    # with luminal air; below dense swallowed contrast.
    tissue_hu=(20.0, 250.0),
)
