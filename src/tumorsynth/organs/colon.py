"""Colon: colorectal cancer as wall thickening, eccentric plaque to annular "apple core".

The colon mask (TotalSegmentator's ``colon``, AbdomenAtlas's ``colon``) holds the wall and the
lumen (air, stool, fluid, oral contrast), so its tumors are drawn as wall tumors along the organ's
course (:class:`~tumorsynth.organs.profile.WallRules`, :mod:`tumorsynth.shapes.wall`), never as
ellipsoids. No source below is quoted from a specific paper unless named: the numbers are the
typical textbook values of CT of the colon (normal wall, T stages, CT colonography detection)
and are marked as such.

Size classes of a wall tumor
----------------------------
``tiny`` and ``small`` are early cancers (T1-T2: confined to the wall): a focal, eccentric,
plaque-like or sessile thickening over a short segment, under 1 cm thick. ``medium`` is the
common advanced cancer (T2-T3), often circumferential; ``large`` the annular "apple core"
stricture with extension into the pericolic fat (T3-T4). Downstream, early stage for a wall
tumor means its size class (tiny, small), not the 2 cm equivalent diameter of solid organs: a
2.5 cm long plaque already has an equivalent diameter near 2 cm.

``SizeClassRule.base_radius_mm`` is nominal for a wall tumor: half a typical thickness of its
class (about the middle of ``thickness_mm``). The wall shape draws length, thickness, arc and
outgrowth from :class:`~tumorsynth.organs.profile.WallRules` and never reads it, and records
carry the drawn wall (``radii_mm`` = half length, tube radius + outgrowth), not this radius.
What reads it: the largest-first order of placement (it grows with the class), and the
tumor-capacity check's volume bound (a sphere of 0.75 x this radius: hardly ever binding
for a tube; the wall shape refuses a tube too short or too thin with its own message). A wall
tumor's bulk is far larger than that sphere: the radius of the sphere of equal volume, by
Monte Carlo over these rules on a colon of 15-20 mm radius, has median tiny 8.7-9.7, small
11.8-13.3, medium 17.6-20.2, large 22.6-26.5 mm (what records' equivalent diameters show).
"""

from tumorsynth.organs.profile import (
    AppearanceRules,
    OrganProfile,
    PlacementRules,
    SizeClassRule,
    WallRules,
)

__all__ = ["COLON"]

COLON = OrganProfile(
    name="colon",
    # One primary per case; a synchronous second colorectal cancer is found in a few percent of
    # patients (typical 3-5%), and synchronous small neoplasms are more common, so tiny allows 2.
    size_classes={
        "tiny": SizeClassRule(3.0, (1, 2)),
        "small": SizeClassRule(4.0, (1, 1)),
        "medium": SizeClassRule(6.0, (1, 1)),
        "large": SizeClassRule(8.0, (1, 1)),
    },
    wall=WallRules(
        # Length of the thickened segment. CRC on CT is typically 2-6 cm long (issue 15; typical
        # radiology textbook values); the smallest cancers CT shows are about 1 cm (CT
        # colonography detects lesions of 6-10 mm and more, typical).
        length_mm={
            "tiny": (8.0, 15.0),
            "small": (15.0, 30.0),
            "medium": (30.0, 50.0),
            "large": (45.0, 80.0),
        },
        # Tumor thickness from the outer wall inward. The normal distended colon wall is 2-3 mm
        # (over 3 mm is abnormal, typical CT criterion); early cancers are plaques under 1 cm,
        # advanced ones thicken the wall to 1-2 cm (issue 15; typical). The wall shape caps it
        # at the tube's radius minus ``min_lumen_mm``.
        thickness_mm={
            "tiny": (4.0, 7.0),
            "small": (6.0, 10.0),
            "medium": (10.0, 15.0),
            "large": (12.0, 20.0),
        },
        # Early cancers are focal and eccentric; advanced ones are mostly circumferential (the
        # "apple core" annular constricting lesion of the barium-enema era, typical).
        annular_probability={"tiny": 0.0, "small": 0.1, "medium": 0.5, "large": 0.85},
        # An eccentric (plaque-like) tumor covers a quarter to two thirds of the circumference.
        arc_deg=(90.0, 240.0),
        # Shouldered (overhanging, abrupt) margins are the hallmark of a malignant stricture,
        # tapered ones of a benign one (typical): short shoulders, 6-15% of the length per end.
        shoulder_fraction=(0.06, 0.15),
        # T3: through the muscularis propria into pericolic fat; most T3 cancers reach under
        # 5 mm past it (T3a/b by extramural depth, typical), stranding of the fat aside.
        outgrowth_mm=(0.0, 4.0),
        # An apple-core stricture leaves a channel of a few mm (complete obstruction is the
        # exception).
        min_lumen_mm=2.0,
        # Colon outer diameter is 3-8 cm (typical; sigmoid narrowest, caecum widest); a mask
        # whose inscribed radius is under 6 mm is a collapsed or mis-segmented piece.
        min_radius_mm=6.0,
    ),
    # Wall tumors do not use depth, lobes or vessel clearance: the wall shape places them along
    # the centreline. ``bulge_mm`` = the largest outgrowth (the renderer's allowed region around
    # the tube); two tumors keep 1 cm apart.
    placement=PlacementRules(
        depth_fraction=0.0,
        min_depth_mm=0.0,
        bulge_mm=4.0,
        vessel_clearance_mm=0.0,
        gap_mm=10.0,
    ),
    # Colorectal adenocarcinoma: soft tissue that enhances, about 35-45 HU without contrast and
    # 70-100 HU in the portal venous phase (typical), fairly homogeneous; large ones may hold a
    # little low-attenuation necrosis or mucin (10-30 HU, typical); no cysts, no rim.
    # The measured "parenchyma" of a colon is the median of its mask's voxels in ``tissue_hu``:
    # the wall, with partial volume. Measured on the plain 3 mm TotalSegmentator example: 31 HU
    # (its spleen 35, psoas 27 HU); the portal venous wall, thin and partial-volumed, reads
    # ~50-90 HU (typical). A thick tumor reads its own HU, at or above the measured wall:
    # -5..+30 HU, so 29-45 HU on that plain scan (x0.45, see ``enhancement``), 43-59 HU at a
    # wall median of 45 HU, 75-110 HU at 80 HU.
    appearance=AppearanceRules(
        contrast_hu=(-5.0, 30.0),
        centre_drop_hu=(0.0, 10.0),
        texture_hu=(4.0, 12.0),
        texture_scale_mm=(2.5, 6.0),
        edge_width_mm=(0.5, 1.2),
        necrosis_probability=0.1,
        necrosis_hu=(10.0, 30.0),
        rim_probability=0.0,
        dense_spot_probability=0.0,
        cyst_probability=0.0,
        noise_ratio=(1.0, 1.3),
        unenhanced_hu=30.0,
        enhanced_hu=80.0,
    ),
    # CT-detected colorectal cancers are mostly advanced (stage I in about a fifth, typical).
    mixed_weights={"tiny": 0.15, "small": 0.25, "medium": 0.35, "large": 0.25},
    # Median of the in-range voxels: it cannot fall under ``tissue_hu``'s 20 HU unless the mask
    # holds no tissue at all; over 160 HU the lumen's contrast, not the wall, dominates.
    expected_parenchyma_hu=(20.0, 160.0),
    # Bright voxels inside a colon mask are diluted oral contrast or hyperenhancing mucosa, which
    # a wall tumor displaces, not vessels to avoid: only far brighter ones count as vessels.
    vessel_threshold_hu=150.0,
    # T1-T2 cancers (module docstring): early by class, not by the 2 cm diameter of solid organs
    early_stage_sizes=("tiny", "small"),
    # The wall's own tissue: above water and lumen fluid (0-20 HU), fat (-190 to -30 HU, the
    # adipose window of CT body composition; Mitsiopoulos et al., J Appl Physiol 1998) and the
    # wall's partial volume with air, gas-mixed stool and fat, which pull a wider range's median
    # towards the lumen (TotalSegmentator example: median 31 HU here, -6 HU from -30 HU up,
    # -37 HU from -100 HU up, measured); unenhanced soft tissue is 30-60 HU (typical). Below
    # the dense positive oral contrast of the lumen (typically several hundred HU).
    tissue_hu=(20.0, 250.0),
)
