"""Organ profiles: what tumors of one organ look like, how big they are and where they may sit.

A profile is frozen data (no code paths per organ): size classes with count distributions, shape
rules, placement rules and the appearance model relative to the organ's own measured parenchyma.
Adding an organ is adding a profile (see :func:`tumorsynth.organs.register_profile`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tumorsynth._types import SIZE_CLASSES, SizeClass

__all__ = [
    "EARLY_STAGE_DIAMETER_MM",
    "AppearanceRules",
    "OrganProfile",
    "PlacementRules",
    "Range",
    "ShapeRules",
    "SizeClassRule",
    "WallRules",
    "equivalent_diameter_mm",
    "is_early_stage",
]

#: A closed interval ``(low, high)`` to draw a parameter from uniformly.
Range = tuple[float, float]

#: Early-stage tumors have an equivalent diameter under 2 cm (DiffTumor's early / non-early split).
EARLY_STAGE_DIAMETER_MM = 20.0


def equivalent_diameter_mm(volume_mm3: float) -> float:
    """Diameter (mm) of the sphere of ``volume_mm3``: the one way a tumor's size is measured
    (records, evaluation, training crops and learned generators all call this).

    Examples
    --------
    >>> round(equivalent_diameter_mm(4 / 3 * math.pi * 8.0**3), 6)
    16.0
    """
    return float(np.cbrt(6.0 * float(volume_mm3) / math.pi))


def is_early_stage(diameter_mm: float) -> bool:
    """An early-stage tumor: equivalent diameter under :data:`EARLY_STAGE_DIAMETER_MM`."""
    return bool(diameter_mm < EARLY_STAGE_DIAMETER_MM)


@dataclass(frozen=True)
class SizeClassRule:
    """One SynTumor size class of an organ.

    Attributes
    ----------
    base_radius_mm
        Each semi-axis is drawn in ``[0.75, 1.25] * base_radius_mm``.
    count
        Tumors per case when the user does not give a count (inclusive range).
    mass_effect
        Fraction of the tumor volume that pushed surrounding tissue outward (0 = the tumor
        replaced tissue in place; 0.3 moves the tumor edge's original tissue out by ~10% of R).
    satellite_probability
        Chance of satellite nodules around a tumor of this class.
    multinodular_probability
        Chance that a tumor of this class is multinodular / confluent: a cluster of the
        :attr:`ShapeRules.multinodular_lobes` instead of a lobulated body.
    """

    base_radius_mm: float
    count: tuple[int, int]
    mass_effect: Range = (0.0, 0.0)
    satellite_probability: float = 0.0
    multinodular_probability: float = 0.0


@dataclass(frozen=True)
class ShapeRules:
    """Shape randomness, relative to the tumor radius.

    ``deform_amplitude`` is the elastic displacement (fraction of the mean radius, applied as a
    smooth random field with control points ``deform_scale`` * radius apart); satellites are
    spheres of ``satellite_radius_mm`` at ``satellite_distance`` * radius from the tumor centre.

    Lobes (:class:`~tumorsynth.shapes.Lobe`) make the body lobulated, as real tumors are: each is
    the main ellipsoid scaled by ``lobe_scale``, its centre ``lobe_offset`` of the way from the
    tumor centre to the main surface in a random direction; a lobe reaches at most ``lobe_reach``
    times the main body's radius in its direction (placement plans for the main body; where a
    lobe leaves the organ, the renderer clips it like any tumor voxel outside the allowed
    region). ``lobes`` is the range of the lobe count (0 = the first records' smooth ellipsoid). A multinodular, confluent tumor (``multinodular_probability`` of its size
    class) has ``multinodular_lobes`` lobes of ``multinodular_scale``, set further out (centres
    at 0.7-1.0 of the main radius, reaching at most ``multinodular_reach`` times it).
    """

    axis_jitter: Range = (0.75, 1.25)
    deform_amplitude: Range = (0.05, 0.15)
    deform_scale: Range = (0.6, 1.2)
    satellite_count: tuple[int, int] = (1, 4)
    satellite_radius_mm: Range = (2.0, 5.0)
    satellite_distance: Range = (1.2, 1.8)
    lobes: tuple[int, int] = (0, 0)
    lobe_scale: Range = (0.4, 0.7)
    lobe_offset: Range = (0.4, 0.8)
    lobe_reach: float = 1.2
    multinodular_lobes: tuple[int, int] = (3, 6)
    multinodular_scale: Range = (0.45, 0.65)
    multinodular_reach: float = 1.45


@dataclass(frozen=True)
class PlacementRules:
    """Where a tumor centre may go.

    Attributes
    ----------
    depth_fraction
        The centre lies at least ``depth_fraction * largest radius`` inside the organ (and at
        least ``min_depth_mm``); 1.0 keeps the tumor wholly inside, less lets it reach the capsule.
    bulge_mm
        How far tumor voxels may extend past the organ surface (into soft tissue, never into other
        labelled structures, air or bone).
    exophytic_probability
        Chance that a tumor larger than tiny grows out of the organ (kidney RCC): its centre then
        lies within ``exophytic_depth`` * radius of the surface and it may extend one radius out.
    vessel_clearance_mm
        The centre keeps ``min(largest radius + 1 mm, vessel_clearance_mm)`` from bright vessels
        (contrast CT), so small tumors do not sit on a vessel. Where no site of the right depth
        keeps that clearance, the tumor is placed anyway and displaces the vessels.
    gap_mm
        Minimum gap between two tumors' bounding spheres.
    slice_range
        Allowed fraction of the organ's extent along the slice axis (the reference code uses
        0.3-0.7 for liver; the default allows the whole organ).
    surface_sizes, surface_depth_fraction
        Size classes that may sit near the organ surface (large tumors reach and bulge the
        capsule, as real ones do) when no site ``depth_fraction`` deep remains: their centre then
        needs only ``surface_depth_fraction * largest radius`` of organ around it.
    confluent_sizes, confluent_overlap
        Size classes whose tumors may touch or partly merge with each other (confluent masses)
        when no separate site remains: two such tumors' bounding spheres may overlap by
        ``confluent_overlap`` times the smaller radius. Other tumors (smaller ones, tumors that
        were in the scan) keep ``gap_mm`` clear.

    The last two rules are fallbacks: a site that keeps the strict rules is always tried first,
    so they change nothing where the strict rules find room. Empty by default (no relaxation).
    """

    depth_fraction: float = 1.0
    min_depth_mm: float = 3.0
    bulge_mm: float = 1.5
    exophytic_probability: float = 0.0
    exophytic_depth: Range = (-0.2, 0.35)
    vessel_clearance_mm: float = 6.0
    gap_mm: float = 2.0
    slice_range: Range = (0.0, 1.0)
    surface_sizes: tuple[SizeClass, ...] = ()
    surface_depth_fraction: float = 0.3
    confluent_sizes: tuple[SizeClass, ...] = ()
    confluent_overlap: float = 0.5


@dataclass(frozen=True)
class AppearanceRules:
    """The heuristic generator's intensity model, relative to the organ's measured parenchyma (HU).

    Calibrated on the two real liver tumors of 3D-IRCADb patient 1.17 (see benchmarks/RESULTS.md):
    rim about -25 HU below liver, centre about -65 HU, heterogeneous, edge about 1-2 mm wide.
    Solid-tumor contrasts are for an enhanced scan (organ at ``enhanced_hu``) and shrink towards
    non-contrast scans (organ at ``unenhanced_hu``); see :meth:`enhancement`.

    ``rim_hu`` may reach below 0: a hypodense halo instead of an enhancing rim. ``centre_power``
    is the exponent of the darker centre's depth profile (1 darkens steadily from the edge, as
    IRCAD 1.17's tumors do; 1.5 keeps the periphery flat). ``centre_depth_mm`` above 0 replaces
    it by a profile that saturates in mm, ``1 - exp(-(depth_mm / centre_depth_mm)^2)``: a rim a
    few mm wide, then the drop nearly whole ``2 x centre_depth_mm`` inside the edge, whatever the
    tumor's size, as in IRCAD 1.17 (rim -13..-28 HU, 10-20 mm deep -46..-67 HU). ``noise_ratio`` is
    the range of the solid tumor's fine-scale noise (2 mm high-pass) relative to the host's: real
    tumors are more heterogeneous than their host at fine scale; the heuristic generator adds a
    grain of its own, relative to the scan's measured noise, to reach it (1 = the scan's noise).
    """

    contrast_hu: Range = (-45.0, -15.0)
    centre_drop_hu: Range = (0.0, 45.0)
    centre_power: Range = (1.0, 1.5)
    centre_depth_mm: Range = (0.0, 0.0)
    texture_hu: Range = (4.0, 20.0)
    texture_scale_mm: Range = (2.5, 7.0)
    edge_width_mm: Range = (0.5, 1.5)
    necrosis_probability: float = 0.3
    necrosis_hu: Range = (10.0, 35.0)
    necrosis_fraction: Range = (0.3, 0.6)
    rim_probability: float = 0.2
    rim_hu: Range = (10.0, 30.0)
    rim_width_mm: Range = (1.5, 3.0)
    dense_spot_probability: float = 0.15
    dense_spot_hu: Range = (60.0, 160.0)
    cyst_probability: float = 0.0
    cyst_hu: Range = (0.0, 20.0)
    cyst_edge_width_mm: Range = (0.2, 0.5)
    noise_ratio: Range = (1.1, 1.5)
    unenhanced_hu: float = 55.0
    enhanced_hu: float = 110.0

    def enhancement(self, parenchyma_hu: float) -> float:
        """How contrast-enhanced the scan looks, from the organ's measured HU: 1 at the phase the
        contrast ranges were calibrated for (``enhanced_hu``), down to 0.45 without contrast.

        Tumor-to-organ contrast is mostly contrast uptake: without contrast medium a liver
        metastasis is ~10-20 HU below the liver, not 25-60; solid contrasts scale by this.
        """
        span = self.enhanced_hu - self.unenhanced_hu
        return float(min(1.0, max(0.45, (parenchyma_hu - self.unenhanced_hu) / span)))


@dataclass(frozen=True)
class WallRules:
    """Wall tumors of a hollow, tube-shaped organ (colon, esophagus).

    Their cancers grow in the wall: a thickening over a segment along the organ's course,
    circumferential ("apple core", ``annular_probability``) or eccentric over ``arc_deg`` of the
    circumference, tapering to shouldered ends, narrowing the lumen; the displaced lumen content
    (air, fluid, oral contrast) becomes tumor. :mod:`tumorsynth.shapes.wall` draws and renders
    them; a profile with ``wall`` set gets no ellipsoids.

    Attributes
    ----------
    length_mm
        Length of the thickened segment along the centreline, ends included, per size class.
    thickness_mm
        Thickness of the tumor at the plateau, from the outer wall inward, per size class; it is
        capped so that at least ``min_lumen_mm`` of lumen radius remains.
    annular_probability
        Chance, per size class, that the tumor goes round the whole circumference.
    arc_deg
        Arc of the circumference an eccentric (plaque-like) tumor covers.
    shoulder_fraction
        Length of each end's rise from no thickening to the plateau, as a fraction of the length
        (small: shouldered, abrupt margins).
    outgrowth_mm
        How far the tumor reaches past the outer wall into the fat at the plateau.
    min_lumen_mm
        Radius of lumen the narrowing keeps open.
    min_radius_mm
        A tube whose inscribed radius is under this along the segment cannot hold a wall tumor
        (a clear error names the organ and the radius found).
    """

    length_mm: Mapping[SizeClass, Range]
    thickness_mm: Mapping[SizeClass, Range]
    annular_probability: Mapping[SizeClass, float]
    arc_deg: Range = (90.0, 240.0)
    shoulder_fraction: Range = (0.08, 0.2)
    outgrowth_mm: Range = (0.0, 3.0)
    min_lumen_mm: float = 1.0
    min_radius_mm: float = 4.0

    def __post_init__(self) -> None:
        for name in ("length_mm", "thickness_mm", "annular_probability"):
            missing = [c for c in SIZE_CLASSES if c not in getattr(self, name)]
            if missing:
                raise ValueError(f"WallRules.{name}: size classes {missing} are missing")


@dataclass(frozen=True)
class OrganProfile:
    """Everything tumorsynth knows about tumors of one organ.

    Attributes
    ----------
    name
        Organ name as used in label maps (``liver``, ``pancreas``, ``kidney``).
    size_classes
        Rules per SynTumor size class.
    mixed_weights
        Probability of each size class when the user asks for ``--size mixed``.
    expected_parenchyma_hu
        Range of plausible median parenchymal HU (non-contrast to portal venous phase); a scan
        outside it gets a warning, not an error.
    vessel_threshold_hu
        A voxel is a bright vessel when its smoothed HU exceeds the parenchymal median by this.
    wall
        Hollow organs only (colon, esophagus): their tumors are wall thickenings along the
        organ's course (:class:`WallRules`), not ellipsoids.
    early_stage_sizes
        Size classes that are early cancers in this organ (a synthetic tumor's record says
        ``early_stage`` by its class); empty: by equivalent diameter under 2 cm
        (:func:`is_early_stage`), as for solid organs. Real lesions, which have no class, are
        always judged by diameter.
    tissue_hu
        The HU range of the organ's own tissue: its parenchyma is measured on mask voxels in this
        range only (a hollow organ's mask also holds its lumen: air, fluid, oral contrast).
    """

    name: str
    size_classes: Mapping[SizeClass, SizeClassRule]
    shape: ShapeRules = field(default_factory=ShapeRules)
    placement: PlacementRules = field(default_factory=PlacementRules)
    appearance: AppearanceRules = field(default_factory=AppearanceRules)
    mixed_weights: Mapping[SizeClass, float] = field(
        default_factory=lambda: {"tiny": 0.3, "small": 0.35, "medium": 0.25, "large": 0.1}
    )
    expected_parenchyma_hu: Range = (20.0, 220.0)
    vessel_threshold_hu: float = 40.0
    wall: WallRules | None = None
    tissue_hu: Range | None = None
    early_stage_sizes: tuple[SizeClass, ...] = ()

    def __post_init__(self) -> None:
        missing = [c for c in SIZE_CLASSES if c not in self.size_classes]
        if missing:
            raise ValueError(f"organ profile {self.name!r}: size classes {missing} are missing")
        if abs(sum(self.mixed_weights.values()) - 1.0) > 1e-6:
            raise ValueError(f"organ profile {self.name!r}: mixed_weights must sum to 1")

    def rule(self, size: SizeClass) -> SizeClassRule:
        return self.size_classes[size]

    def is_early(self, size: SizeClass, diameter_mm: float) -> bool:
        """Whether a tumor of this organ, class and equivalent diameter is early stage."""
        if self.early_stage_sizes:
            return size in self.early_stage_sizes
        return is_early_stage(diameter_mm)
