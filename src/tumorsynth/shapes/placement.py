"""Drawing tumor geometry for one organ: size, orientation, deformation, placement, satellites.

:class:`RandomTumorShape` is the random side of the shape step: it only draws a frozen
:class:`~tumorsynth.shapes.ellipsoid.ShapeSpec`; rendering it is deterministic
(:func:`~tumorsynth.shapes.ellipsoid.render_shape`).

Placement rules (per organ profile): the centre lies deep enough inside the organ for the tumor's
size, keeps clear of bright vessels (contrast CT) and of other tumors, and kidney tumors may be
exophytic (centre near the surface, growing out of the organ). Where no such site remains, the
profile may relax the rules, as anatomy does (tiers, strictest first): tumors of its surface sizes
may reach the organ surface, and tumors of its confluent sizes may touch or partly merge with each
other (the liver: large tumors at the capsule, medium and large ones confluent); small tumors keep
separate. Voxels the scan's context excludes (real lesions) are kept clear of by the tumor's body
plus the margin, and by the whole reach of its mass effect, which would move them.

A hollow organ's profile (``wall`` set: colon, esophagus) gets wall tumors instead, drawn along the
tube by :func:`~tumorsynth.shapes.wall_centreline.draw_wall_shape`.
"""

from __future__ import annotations

import math

import numpy as np

from tumorsynth._types import RngLike, SizeClass, as_rng
from tumorsynth.errors import PlacementError
from tumorsynth.organs.context import OrganContext
from tumorsynth.organs.profile import OrganProfile
from tumorsynth.shapes.ellipsoid import Lobe, Satellite, ShapeSpec
from tumorsynth.shapes.mass_effect import MASS_EFFECT_REACH
from tumorsynth.shapes.wall_centreline import draw_wall_shape

__all__ = ["RandomTumorShape", "random_rotation"]

_TRIES = 10


def _excluded_clear_mm(
    context: OrganContext,
    radii: tuple[float, ...],
    amplitude: float,
    mass_effect: float,
) -> float:
    """How far (mm) a tumor centre must be from the excluded voxels: the body (largest semi-axis
    plus the deformation's reach) plus the context's margin, and never within the reach of the
    tumor's mass effect, which would move the excluded voxels. 0 when nothing is excluded."""
    if context.exclusion_mm is None:
        return 0.0
    body = max(radii) + 2.5 * amplitude + context.exclude_margin_mm
    pushed = MASS_EFFECT_REACH * max(radii) + 1.0 if mass_effect > 0 else 0.0
    return float(max(body, pushed))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3-D rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class RandomTumorShape:
    """Draw :class:`ShapeSpec` for tumors of one organ in one scan.

    Parameters
    ----------
    profile
        The organ profile whose size classes and rules apply.

    Examples
    --------
    >>> # shape = RandomTumorShape(LIVER).draw(context, "small", rng=0)
    """

    def __init__(self, profile: OrganProfile) -> None:
        self.profile = profile

    def draw(
        self, context: OrganContext, size: SizeClass, rng: RngLike = None, *, where: str = "<image>"
    ) -> ShapeSpec:
        """Draw one tumor's geometry, clear of the spheres ``context`` marks as occupied.

        Drawing changes nothing in ``context``: the caller occupies the tumor's space once it
        keeps the tumor (``context.occupy(spec.center_vox, spec.bounding_radius_mm)``).

        A hollow organ's profile (``wall`` set) draws a wall tumor along the tube
        (:func:`~tumorsynth.shapes.wall_centreline.draw_wall_shape`; no mass effect, the
        outgrowth as ``bulge_mm``).

        Raises
        ------
        PlacementError
            The organ has no room for a tumor of this size (too thin, or full), with the depth
            that was needed and the depth the organ has; a tube too short or too thin for the
            wall tumor.
        """
        rng = as_rng(rng)
        if self.profile.wall is not None:
            return draw_wall_shape(context, self.profile.wall, size, rng, where=where)
        rules = self.profile.shape
        rule = self.profile.rule(size)
        place = self.profile.placement
        needed = math.inf
        tiers = self._placement_tiers(size)
        # A smaller draw of the same class may fit where this one did not; the rules relax tier by
        # tier only when _TRIES draws found no site (so the first tier's sites are as they were).
        for attempt in range(_TRIES * len(tiers)):
            depth_fraction, merge_fraction = tiers[attempt // _TRIES]
            radii = tuple(
                float(rule.base_radius_mm * rng.uniform(*rules.axis_jitter)) for _ in range(3)
            )
            mean_r = float(np.mean(radii))
            rotation = random_rotation(rng)
            amplitude = float(rng.uniform(*rules.deform_amplitude) * mean_r)
            scale = float(max(2.0, rng.uniform(*rules.deform_scale) * mean_r))
            deform_seed = int(rng.integers(2**31 - 1))
            mass_effect = float(rng.uniform(*rule.mass_effect))
            exophytic = (
                size != "tiny"
                and place.exophytic_probability > 0
                and rng.random() < place.exophytic_probability
            )
            main_r = max(radii) + amplitude
            if exophytic:
                lo, hi = place.exophytic_depth
                min_depth, max_depth = max(0.5, lo * main_r), max(1.0, hi * main_r)
                bulge = main_r
            else:
                min_depth = max(place.min_depth_mm, depth_fraction * main_r)
                max_depth = math.inf
                bulge = place.bulge_mm
            needed = min(needed, min_depth)
            clearance = min(main_r + 1.0, place.vessel_clearance_mm)
            keep_clear = main_r + place.gap_mm
            site_rules = {
                "min_depth_mm": min_depth,
                "max_depth_mm": max_depth,
                "keep_clear_mm": keep_clear,
                "merge_fraction": merge_fraction,
                "excluded_clear_mm": _excluded_clear_mm(context, radii, amplitude, mass_effect),
            }
            pick = context.pick(rng, min_clearance_mm=clearance, **site_rules)
            if pick is None:  # vessels everywhere: place anyway, the tumor displaces them
                pick = context.pick(rng, **site_rules)
            if pick is not None:
                break
        else:
            self._raise_no_room(context, size, needed, where)
        jitter = rng.uniform(-0.5, 0.5, size=3) * np.array(context.stride)
        assert pick is not None  # the loop above either found a site or raised
        center = context.coarse_to_voxel(pick[None])[0] + jitter
        center = np.clip(center, 0, np.array(context.volume_shape) - 1)
        satellites: tuple[Satellite, ...] = ()
        if rule.satellite_probability > 0 and rng.random() < rule.satellite_probability:
            satellites = self._draw_satellites(context, center, mean_r, rng)
        lobes = self._draw_lobes(size, radii, rotation, rng)
        return ShapeSpec(
            center_vox=tuple(float(c) for c in center),  # type: ignore[arg-type]
            radii_mm=radii,  # type: ignore[arg-type]
            rotation=tuple(float(v) for v in rotation.ravel()),
            deform_amplitude_mm=amplitude,
            deform_scale_mm=scale,
            deform_seed=deform_seed,
            mass_effect=mass_effect,
            bulge_mm=float(bulge),
            exophytic=bool(exophytic),
            satellites=satellites,
            lobes=lobes,
            mass_effect_resampling="split",
        )

    def _draw_satellites(
        self, context: OrganContext, center: np.ndarray, mean_r: float, rng: np.random.Generator
    ) -> tuple[Satellite, ...]:
        rules = self.profile.shape
        spacing = np.array(context.spacing_mm)
        out = []
        for _ in range(int(rng.integers(rules.satellite_count[0], rules.satellite_count[1] + 1))):
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            offset = direction * rng.uniform(*rules.satellite_distance) * mean_r
            radius = float(rng.uniform(*rules.satellite_radius_mm))
            vox = center + offset / spacing
            inside = float(context.depth_at(vox[None])[0]) >= radius + 1.0
            inside &= float(context.excluded_clear_at(vox[None])[0]) >= (
                radius + 1.0 + context.exclude_margin_mm
            )
            if inside:
                out.append(Satellite(tuple(float(v) for v in offset), radius))  # type: ignore[arg-type]
        return tuple(out)

    def _draw_lobes(
        self,
        size: SizeClass,
        radii: tuple[float, ...],
        rotation: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[Lobe, ...]:
        """Lobes of the body (drawn last, so they leave the size and placement draws as they were).

        A lobe's centre lies ``lobe_offset`` of the way to the main surface in a uniformly random
        direction (in the ellipsoid's own frame, so it follows the axis ratios); its scale is cut
        so the lobe reaches at most ``lobe_reach`` (multinodular: ``multinodular_reach``) times
        the main radius in that direction.
        """
        rules = self.profile.shape
        multinodular = rng.random() < self.profile.rule(size).multinodular_probability
        if multinodular:
            count_range, scales, offsets = (
                rules.multinodular_lobes,
                rules.multinodular_scale,
                (0.7, 1.0),
            )
            reach = rules.multinodular_reach
        else:
            count_range, scales, offsets = rules.lobes, rules.lobe_scale, rules.lobe_offset
            reach = rules.lobe_reach
        count = int(rng.integers(count_range[0], count_range[1] + 1))
        semi_axes = np.asarray(radii)
        lobes = []
        for _ in range(count):
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            offset = float(rng.uniform(*offsets))
            scale = min(float(rng.uniform(*scales)), reach - offset)
            if scale <= 0.05:
                continue
            offset_mm = rotation @ (semi_axes * direction * offset)
            lobes.append(Lobe(tuple(float(v) for v in offset_mm), scale))  # type: ignore[arg-type]
        return tuple(lobes)

    def _raise_no_room(
        self, context: OrganContext, size: SizeClass, min_depth: float, where: str
    ) -> None:
        deepest = float(context.depth_mm.max())
        if deepest < min_depth:
            raise PlacementError(
                where,
                f"{context.organ} is too small for a {size} tumor: its centre needs "
                f"{min_depth:.1f} mm of organ around it, the deepest point of this {context.organ} "
                f"is {deepest:.1f} mm from its surface",
                fix="ask for a smaller --size",
            )
        place = self.profile.placement
        rules = []
        if size in place.surface_sizes:
            rules.append("at the organ surface")
        if size in place.confluent_sizes:
            rules.append("confluent with the tumors there")
        tried = f" (also tried {' and '.join(rules)})" if rules else ""
        excluded = (
            f" and {context.exclude_margin_mm:g} mm from the excluded labels"
            if context.exclusion_mm is not None
            else ""
        )
        raise PlacementError(
            where,
            f"no room left in the {context.organ} for another {size} tumor clear of the "
            f"{len(context.occupied)} tumors already there{excluded}{tried}",
            fix="ask for fewer or smaller tumors"
            + (", or a smaller --exclude-margin-mm" if excluded else ""),
        )

    def _placement_tiers(self, size: SizeClass) -> list[tuple[float, float]]:
        """(depth fraction, merge fraction) per tier, strictest first: separate and deep; then,
        for the profile's surface sizes, separate at the organ surface; then, for its confluent
        sizes, touching or partly merged with other confluent tumors."""
        place = self.profile.placement
        depth = place.depth_fraction
        tiers = [(depth, 0.0)]
        if size in place.surface_sizes and place.surface_depth_fraction < depth:
            depth = place.surface_depth_fraction
            tiers.append((depth, 0.0))
        if size in place.confluent_sizes and place.confluent_overlap > 0:
            tiers.append((depth, place.confluent_overlap))
        return tiers
