"""Tumor shapes in mm at native spacing: an elastically deformed, rotated ellipsoid with lobes,
plus satellites.

:class:`ShapeSpec` is the frozen, JSON-serializable description; :func:`render_shape` evaluates it in
a crop as a signed distance field (mm, negative inside), from which the binary tumor mask
(``distance < 0``) and any soft edge (:func:`soft_mask`) follow without filtering. The deformation
is a smooth random displacement field (cubic B-spline, :mod:`tumorsynth.shapes.fields`) applied to
the coordinates before the ellipsoid is evaluated: the same elastic warp as deforming a mask, but
analytic, so it costs arithmetic only and has no interpolation blur.

Lobes (:class:`Lobe`) make the body lobulated or multinodular: each is a scaled copy of the main
ellipsoid (same orientation and axis ratios) shifted off the centre, deformed by the same field,
and the body is their union with the main ellipsoid, as real confluent tumors are. A spec without
lobes renders exactly as before they existed.

A wall tumor of a hollow organ (colon, esophagus) is no ellipsoid: a spec whose ``wall`` is set
(:class:`~tumorsynth.shapes.wall.WallSpec`) renders as a thickening of the tube's wall along its
centreline, and every geometric property below covers that segment. A spec without ``wall``
renders exactly as before wall tumors existed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np
from scipy.special import erfc

from tumorsynth._types import Vec3, plain_json
from tumorsynth.box import Box
from tumorsynth.shapes.fields import crop_axes_mm, smooth_random_field
from tumorsynth.shapes.wall import WallSpec, wall_box, wall_field

__all__ = [
    "MassEffectResampling",
    "Lobe",
    "Satellite",
    "ShapeField",
    "ShapeSpec",
    "render_shape",
    "shape_box",
    "soft_mask",
]

#: How the mass effect resamples the pushed tissue: ``"trilinear"`` (the first records' way; it
#: smooths the scan's noise) or ``"split"`` (low-pass part trilinear, high-pass residual by nearest
#: neighbour from the same source: the noise keeps its amplitude and grain).
MassEffectResampling = Literal["trilinear", "split"]


@dataclass(frozen=True)
class Satellite:
    """A satellite nodule: offset from the tumor centre (mm, voxel-axis frame) and radius (mm)."""

    offset_mm: Vec3
    radius_mm: float


@dataclass(frozen=True)
class Lobe:
    """A lobe of the tumor body: the main ellipsoid scaled by ``scale`` (same orientation and axis
    ratios), centred at ``offset_mm`` from the tumor centre (mm, voxel-axis frame)."""

    offset_mm: Vec3
    scale: float


@dataclass(frozen=True)
class ShapeSpec:
    """Geometry of one tumor, enough to render it voxel for voxel.

    Attributes
    ----------
    center_vox
        Centre in voxel coordinates (i, j, k) of the scan, sub-voxel.
    radii_mm
        Semi-axes before rotation (mm).
    rotation
        Row-major 3x3 rotation; its columns are the ellipsoid's axes in the voxel-axis mm frame.
    deform_amplitude_mm, deform_scale_mm, deform_seed
        Elastic deformation: displacement std (mm), control-point spacing (mm) and seed.
    mass_effect
        Fraction of the tumor volume that pushed the surrounding tissue outward (0 = none).
    bulge_mm
        How far the tumor may extend past the organ surface.
    exophytic
        The tumor grows out of the organ (its centre sits near the surface).
    satellites
        Satellite nodules, rendered as part of the same tumor.
    lobes
        Lobes of the body, united with the main ellipsoid (lobulated and multinodular tumors);
        none in the first records.
    mass_effect_resampling
        How the mass effect resamples the pushed tissue (:data:`MassEffectResampling`);
        ``"trilinear"`` in the first records, ``"split"`` (keeps the scan's noise) in new draws.
    wall
        A wall tumor of a hollow organ (:class:`~tumorsynth.shapes.wall.WallSpec`): rendered
        along the organ's centreline instead of as an ellipsoid. ``center_vox`` is then the
        segment's middle, ``radii_mm`` ``(length / 2, R + outgrowth, R + outgrowth)`` and
        ``rotation``'s columns the centreline's tangent, normal and binormal there (for records);
        it has no deformation, lobes, satellites or mass effect.
    """

    center_vox: Vec3
    radii_mm: Vec3
    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    deform_amplitude_mm: float = 0.0
    deform_scale_mm: float = 8.0
    deform_seed: int = 0
    mass_effect: float = 0.0
    bulge_mm: float = 0.0
    exophytic: bool = False
    satellites: tuple[Satellite, ...] = field(default_factory=tuple)
    lobes: tuple[Lobe, ...] = field(default_factory=tuple)
    mass_effect_resampling: MassEffectResampling = "trilinear"
    wall: WallSpec | None = None

    def __post_init__(self) -> None:
        if self.mass_effect_resampling not in get_args(MassEffectResampling):
            raise ValueError(
                f"ShapeSpec.mass_effect_resampling: expected one of "
                f"{list(get_args(MassEffectResampling))}, found {self.mass_effect_resampling!r}"
            )
        if any(not 0 < lobe.scale <= 1 for lobe in self.lobes):
            raise ValueError(
                "ShapeSpec.lobes: expected scales in (0, 1], found "
                f"{[lobe.scale for lobe in self.lobes]}"
            )
        if self.wall is not None and (
            self.lobes or self.satellites or self.deform_amplitude_mm > 0 or self.mass_effect > 0
        ):
            raise ValueError(
                "ShapeSpec.wall: a wall tumor has no lobes, satellites, deformation or mass "
                f"effect, found {len(self.lobes)} lobes, {len(self.satellites)} satellites, "
                f"deform_amplitude_mm={self.deform_amplitude_mm}, mass_effect={self.mass_effect}"
            )

    @property
    def rotation_matrix(self) -> np.ndarray:
        return np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)

    @property
    def main_radius_mm(self) -> float:
        """Largest extent of the body from its centre (semi-axis or lobe, plus deformation; a
        wall tumor's farthest point along its segment)."""
        if self.wall is not None:
            return float(_wall_reach_mm(self.wall, self.center_vox, per_axis=False))
        r_max = max(self.radii_mm)
        reach = [float(np.linalg.norm(lobe.offset_mm)) + lobe.scale * r_max for lobe in self.lobes]
        return max([r_max, *reach]) + 2.5 * self.deform_amplitude_mm

    @property
    def bounding_radius_mm(self) -> float:
        """Radius of a sphere around the centre that holds the whole tumor, satellites included."""
        if self.wall is not None:
            return self.main_radius_mm
        reach = [
            float(np.linalg.norm(s.offset_mm)) + s.radius_mm + 2.5 * self.deform_amplitude_mm
            for s in self.satellites
        ]
        return max([self.main_radius_mm, *reach])

    def half_extents_mm(self) -> np.ndarray:
        """Half-size along each voxel axis (mm) of a box around the centre holding the tumor."""
        if self.wall is not None:
            return _wall_reach_mm(self.wall, self.center_vox, per_axis=True)
        rot = self.rotation_matrix
        slack = 2.5 * self.deform_amplitude_mm
        ellipsoid = np.sqrt((rot**2 * np.asarray(self.radii_mm) ** 2).sum(axis=1))
        half = ellipsoid + slack
        for lobe in self.lobes:
            half = np.maximum(half, np.abs(lobe.offset_mm) + lobe.scale * ellipsoid + slack)
        for sat in self.satellites:
            half = np.maximum(half, np.abs(sat.offset_mm) + sat.radius_mm + slack)
        return half

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["satellites"] = [asdict(s) for s in self.satellites]
        data["lobes"] = [asdict(lobe) for lobe in self.lobes]
        data["wall"] = None if self.wall is None else self.wall.to_dict()
        # Fields added after the first records stay out while they hold their defaults, so a
        # first-generation spec writes the very record it was read from.
        for name, default in _LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return plain_json(data)  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ShapeSpec:
        values = dict(data)
        values["center_vox"] = tuple(values["center_vox"])  # type: ignore[arg-type]
        values["radii_mm"] = tuple(values["radii_mm"])  # type: ignore[arg-type]
        values["rotation"] = tuple(values.get("rotation", cls.rotation))  # type: ignore[arg-type]
        values["satellites"] = tuple(
            Satellite(tuple(s["offset_mm"]), float(s["radius_mm"]))
            for s in values.get("satellites", ())  # type: ignore[attr-defined]
        )
        values["lobes"] = tuple(
            Lobe(tuple(lobe["offset_mm"]), float(lobe["scale"]))
            for lobe in values.get("lobes", ())  # type: ignore[attr-defined]
        )
        wall = values.get("wall")
        values["wall"] = None if wall is None else WallSpec.from_dict(wall)  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def _wall_reach_mm(wall: WallSpec, center_vox: Vec3, *, per_axis: bool) -> np.ndarray:
    """How far (mm) a wall tumor reaches from ``center_vox``: per voxel axis, or as a distance."""
    offsets = wall.body_points_mm() - np.asarray(center_vox) * np.asarray(wall.spacing_mm)
    if per_axis:
        return np.abs(offsets).max(axis=0) + wall.reach_mm()
    return np.asarray(float(np.linalg.norm(offsets, axis=1).max()) + wall.reach_mm())


#: A lobe's distance is evaluated up to this far (mm) beyond it, and the union's field is exact
#: wherever it is under this distance (soft edges, rims and the shells the pipeline measures
#: reach well under it); farther out a lobe is left out, which only saves time.
LOBE_FIELD_MM = 16.0

#: ShapeSpec fields added after the first records, with the defaults that render those records.
_LATER_FIELDS: dict[str, object] = {
    "lobes": [],
    "mass_effect_resampling": "trilinear",
    "wall": None,
}


@dataclass
class ShapeField:
    """A rendered shape in a crop.

    ``distance_mm`` is the signed distance to the tumor surface (negative inside, first-order
    accurate near the surface); ``depth`` is the normalized depth inside the main body, 0 at the
    surface and 1 at the centre (used by generators for radial profiles and necrotic cores).
    """

    box: Box
    distance_mm: np.ndarray
    depth: np.ndarray
    center_vox: tuple[float, float, float]


def shape_box(
    spec: ShapeSpec, spacing_mm: Sequence[float], volume_shape: Sequence[int], margin_mm: float
) -> Box:
    """The crop that holds the whole tumor plus ``margin_mm`` (for soft edges and texture)."""
    if spec.wall is not None:
        return wall_box(spec.wall, spacing_mm, volume_shape, margin_mm)
    return Box.around(
        spec.center_vox,
        tuple(float(h) for h in spec.half_extents_mm() + margin_mm),
        spacing_mm,
        volume_shape,
    )


def render_shape(spec: ShapeSpec, spacing_mm: Sequence[float], box: Box) -> ShapeField:
    """Evaluate ``spec`` in ``box``: signed distance (mm) and normalized depth, float32.

    Examples
    --------
    >>> spec = ShapeSpec(center_vox=(10.0, 10.0, 10.0), radii_mm=(5.0, 5.0, 5.0))
    >>> f = render_shape(spec, (1.0, 1.0, 1.0), Box((0, 0, 0), (21, 21, 21)))
    >>> round(float(f.distance_mm[10, 10, 10]), 4), round(float(f.distance_mm[10, 10, 17]), 4)
    (-5.0, 2.0)
    """
    if spec.wall is not None:
        distance, depth = wall_field(spec.wall, spacing_mm, box)
        return ShapeField(box, distance, depth, spec.center_vox)
    axes = crop_axes_mm(box.origin, box.shape, spacing_mm, spec.center_vox)
    x, y, z = (a.astype(np.float32) for a in axes)
    grid = (x[:, None, None], y[None, :, None], z[None, None, :])
    if spec.deform_amplitude_mm > 0:
        disp = smooth_random_field(
            axes,
            scale_mm=spec.deform_scale_mm,
            extent_mm=spec.bounding_radius_mm,
            seed=spec.deform_seed,
            components=3,
        )
        disp *= np.float32(spec.deform_amplitude_mm)
        for axis in range(3):
            disp[axis] += grid[axis]
        points: tuple[np.ndarray, ...] = (disp[0], disp[1], disp[2])
    else:
        points = tuple(np.broadcast_to(g, box.shape) for g in grid)
    radii = np.asarray(spec.radii_mm, dtype=np.float32)
    rotation = spec.rotation_matrix.astype(np.float32)
    distance = _ellipsoid_distance(points, rotation, radii)
    for lobe in spec.lobes:
        window = _lobe_window(spec, lobe, spacing_mm, box)
        if window is None:
            continue
        shifted = tuple(p[window] - np.float32(o) for p, o in zip(points, lobe.offset_mm))
        lobe_distance = _ellipsoid_distance(shifted, rotation, radii * np.float32(lobe.scale))
        np.minimum(distance[window], lobe_distance, out=distance[window])
    depth = np.clip(distance * np.float32(-1.0 / radii.min()), 0.0, 1.0)
    for sat in spec.satellites:
        d_sat = sum((p - np.float32(o)) ** 2 for p, o in zip(points, sat.offset_mm))
        d_sat = np.sqrt(d_sat) - np.float32(sat.radius_mm)
        np.minimum(distance, d_sat, out=distance)
    return ShapeField(box, distance, depth, spec.center_vox)


def _lobe_window(
    spec: ShapeSpec, lobe: Lobe, spacing_mm: Sequence[float], box: Box
) -> tuple[slice, slice, slice] | None:
    """The part of ``box`` (index slices) within :data:`LOBE_FIELD_MM` of ``lobe``'s extent; None
    when they do not meet. Outside it the lobe is farther than that, so the union's distance
    there is the rest of the body's (exact wherever the distance is under LOBE_FIELD_MM)."""
    rot = spec.rotation_matrix
    half = lobe.scale * np.sqrt((rot**2 * np.asarray(spec.radii_mm) ** 2).sum(axis=1))
    half += 2.5 * spec.deform_amplitude_mm + LOBE_FIELD_MM
    centre = np.asarray(spec.center_vox) + np.asarray(lobe.offset_mm) / np.asarray(spacing_mm)
    centre -= np.asarray(box.origin)
    reach = half / np.asarray(spacing_mm)
    lo = np.maximum(np.floor(centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, box.shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _ellipsoid_distance(
    points: tuple[np.ndarray, ...], rotation: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """First-order signed distance (mm, float32) to the surface of the ellipsoid of semi-axes
    ``radii`` (float32) and axes ``rotation`` (float32 columns), at ``points`` (mm from its
    centre, float32 arrays of one shape)."""
    shape = np.broadcast_shapes(*(p.shape for p in points))
    coef = rotation / radii
    # Local coordinates scaled by the semi-axes, l_j = sum_i p_i R_ij / r_j; then
    # q^2 = sum l_j^2 and |grad q| q = sqrt(sum l_j^2 / r_j^2). Computed in place.
    q2 = np.zeros(shape, dtype=np.float32)
    g2 = np.zeros(shape, dtype=np.float32)
    local = np.empty(shape, dtype=np.float32)
    for j in range(3):
        np.multiply(points[0], coef[0, j], out=local)
        local += points[1] * coef[1, j]
        local += points[2] * coef[2, j]
        local *= local
        q2 += local
        local *= np.float32(1.0 / radii[j] ** 2)
        g2 += local
    q = np.sqrt(q2, out=q2)
    g = np.sqrt(g2, out=g2)
    # First-order distance to the surface q = 1: (q - 1) / |grad q| = (q - 1) q / g.
    np.maximum(g, np.float32(1e-6), out=g)
    distance = q - np.float32(1.0)
    distance *= q
    distance /= g
    centre = q < np.float32(1e-3)
    if centre.any():
        distance[centre] = -radii.min()
    return distance


def soft_mask(distance_mm: np.ndarray, edge_width_mm: float) -> np.ndarray:
    """Soft tumor weight in [0, 1] from a signed distance: a Gaussian-blurred edge of std
    ``edge_width_mm`` (the same profile as blurring a binary mask), float32; 0.5 on the surface.

    Beyond 4.5 std the weight is exactly 0 or 1 (erfc differs from that by < 4e-6 there), so
    only the band around the surface pays for erfc.
    """
    weight = (distance_mm < 0).astype(np.float32)
    if edge_width_mm <= 0:
        return weight
    band = np.abs(distance_mm) < np.float32(4.5 * edge_width_mm)
    weight[band] = 0.5 * erfc(distance_mm[band] / np.float32(math.sqrt(2.0) * edge_width_mm))
    return weight
