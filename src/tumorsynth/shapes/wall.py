"""Wall tumors of hollow organs (colon, esophagus): the frozen spec and its signed distance field.

A colorectal or esophageal cancer is a thickening of the wall over a segment of the tube, all
round it ("apple core") or over an arc of it (plaque-like), with shouldered ends, narrowing the
lumen. :class:`WallSpec` freezes one such tumor: the organ's centreline over the segment (voxel
coordinates, about 1 mm apart), the tube's outer radius measured around it when it was drawn, and
the thickening. :func:`wall_field` renders it in a crop as a signed distance (mm, negative
inside), which :func:`~tumorsynth.shapes.ellipsoid.render_shape` returns for a
:class:`~tumorsynth.shapes.ellipsoid.ShapeSpec` whose ``wall`` is set.

Geometry. Every voxel is referred to its nearest centreline point (a KD-tree of the centreline,
queried for the crop's voxels only): arc position ``s`` (mm from the segment's middle, refined by
the voxel's offset along the tangent, up to half a step at inner points; past the centreline's
ends, along the end's tangent), radial distance ``rho`` and angle ``theta`` in a parallel-
transport frame of the centreline (:func:`centreline_frames`). With ``R(s, theta)`` the distance
from the centreline to the organ's outer surface (:attr:`WallSpec.outer_profile_mm`, bilinear in
point and angle), ``T`` the thickness, ``g`` the outgrowth, ``f(s)`` the profile along the
segment and ``a(theta)`` the one around it (both in [0, 1])::

    r_in  = R - T f a      (never below min_lumen_mm: the lumen keeps that radius)
    r_out = R + g f a
    d     = max(r_in - rho, rho - r_out, |s| - H, rho (|dtheta| - W))

so the tumor fills the wall and the former lumen from the outer surface inward (the lumen content
it displaces becomes tumor; following the real cross-section, so no lumen is left between the
tumor and the wall) and is positive (no tumor, no soft-edge halo) beyond the segment's ends
``|s| > H`` and outside an eccentric arc (half-width ``W``). ``f`` rises from 0 to 1 over each
shoulder with a smoothstep, the shoulder centred on the segment's nominal end, so ``length_mm`` is
the length over which the thickening exceeds half the plateau's and the tumor spans
``H = (length_mm + shoulder_mm) / 2`` either side of the middle; likewise ``arc_deg`` is the arc
over which it exceeds half (its edges taper over :data:`ARC_TAPER_FRACTION` of the arc). The
distance is first order: exact across the wall, an arc length along the tube (on a bend's outer
side a little less than the straight-line distance). The depth is 0 at the surface and 1 at half
the plateau's thickness (thickness plus outgrowth) inside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tumorsynth._types import Vec3, plain_json
from tumorsynth.box import Box

__all__ = [
    "ARC_TAPER_FRACTION",
    "WallSpec",
    "centreline_frames",
    "wall_box",
    "wall_field",
]

#: An eccentric tumor's thickening falls from the plateau to nothing over this fraction of its
#: arc at each edge (a smoothstep centred on the nominal edge; never more than the rest of the
#: circumference).
ARC_TAPER_FRACTION = 0.25

#: The surface of the segment's ends lies within this (mm) of the last centreline sample that
#: the box must hold (the arc position is refined by a voxel's offset along the tangent).
_END_SLACK_MM = 1.0


@dataclass(frozen=True)
class WallSpec:
    """One wall tumor of a tube-shaped organ, enough to render it voxel for voxel.

    Attributes
    ----------
    centreline_vox
        The organ's centreline over the segment and a little beyond, ordered, in the scan's voxel
        coordinates (i, j, k), about 1 mm apart; the segment's middle is the polyline's
        arc-length midpoint.
    outer_radius_mm
        The tube's inscribed (smallest) outer radius at each centreline point (mm), measured when
        the tumor was drawn.
    length_mm
        Length of the thickened segment along the centreline (mm), measured where the
        thickening is half the plateau's (the middle of each shoulder).
    shoulder_mm
        Length of each end's rise from nothing to the plateau (mm), centred on the nominal end:
        the tumor spans ``length_mm + shoulder_mm`` in all.
    thickness_mm
        Thickness at the plateau, from the outer surface inward (mm; the normal wall included).
    outgrowth_mm
        How far the tumor reaches past the outer surface into the fat at the plateau (mm).
    arc_deg
        Arc of the circumference covered at half thickness (deg); 360 = annular.
    arc_center_deg
        Direction of the arc's centre (deg): 0 along the normal of :func:`centreline_frames` at
        the segment's middle, 90 along its binormal. Ignored when annular.
    min_lumen_mm
        Radius of lumen the narrowing keeps open (mm).
    spacing_mm
        Voxel spacing the centreline's coordinates refer to (mm); rendering checks it.
    outer_profile_mm
        Distance (mm) from each centreline point to the organ's outer surface at ``n`` equally
        spaced angles (``360 k / n`` deg in the centreline frame): the tumor follows the real
        cross-section. Empty: a round tube of ``outer_radius_mm``.
    """

    centreline_vox: tuple[Vec3, ...]
    outer_radius_mm: tuple[float, ...]
    length_mm: float
    shoulder_mm: float
    thickness_mm: float
    outgrowth_mm: float
    arc_deg: float
    arc_center_deg: float
    min_lumen_mm: float
    spacing_mm: Vec3
    outer_profile_mm: tuple[tuple[float, ...], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n = len(self.centreline_vox)
        problems = []
        if n < 2 or any(len(p) != 3 for p in self.centreline_vox):
            problems.append(f"centreline_vox: expected 2 or more (i, j, k) points, found {n}")
        if len(self.outer_radius_mm) != n or min(self.outer_radius_mm, default=0.0) <= 0:
            problems.append(
                f"outer_radius_mm: expected {n} radii > 0, found {len(self.outer_radius_mm)} "
                f"(smallest {min(self.outer_radius_mm, default=0.0)})"
            )
        if self.outer_profile_mm:
            widths = {len(row) for row in self.outer_profile_mm}
            if len(self.outer_profile_mm) != n or len(widths) != 1 or min(widths) < 4:
                problems.append(
                    f"outer_profile_mm: expected {n} rows of one length >= 4, found "
                    f"{len(self.outer_profile_mm)} rows of lengths {sorted(widths)}"
                )
            elif min(min(row) for row in self.outer_profile_mm) <= 0:
                problems.append("outer_profile_mm: expected distances > 0")
        if not (self.length_mm > 0 and 0 <= self.shoulder_mm <= self.length_mm):
            problems.append(
                f"length_mm, shoulder_mm: expected length > 0 and 0 <= shoulder <= length, "
                f"found {self.length_mm}, {self.shoulder_mm}"
            )
        if not (self.thickness_mm > 0 and self.outgrowth_mm >= 0 and self.min_lumen_mm >= 0):
            problems.append(
                f"thickness_mm, outgrowth_mm, min_lumen_mm: expected > 0, >= 0, >= 0, found "
                f"{self.thickness_mm}, {self.outgrowth_mm}, {self.min_lumen_mm}"
            )
        if not 0 < self.arc_deg <= 360:
            problems.append(f"arc_deg: expected a value in (0, 360], found {self.arc_deg}")
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            problems.append(f"spacing_mm: expected 3 values > 0, found {self.spacing_mm}")
        numbers = [
            *(v for p in self.centreline_vox for v in p),
            *self.outer_radius_mm,
            *(v for row in self.outer_profile_mm for v in row),
            self.length_mm,
            self.shoulder_mm,
            self.thickness_mm,
            self.outgrowth_mm,
            self.arc_deg,
            self.arc_center_deg,
            self.min_lumen_mm,
            *self.spacing_mm,
        ]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            problems.insert(0, "expected finite numbers throughout")
        if problems:
            raise ValueError("WallSpec." + "; ".join(problems))

    # -- geometry in mm ------------------------------------------------------------------------
    @property
    def annular(self) -> bool:
        return self.arc_deg >= 360.0

    @property
    def half_extent_mm(self) -> float:
        """Half the tumor's whole length along the centreline: the ends of the shoulders."""
        return 0.5 * (self.length_mm + self.shoulder_mm)

    def points_mm(self) -> np.ndarray:
        """Centreline points (n, 3) in mm (voxel coordinates times the spacing)."""
        return np.asarray(self.centreline_vox, dtype=np.float64) * np.asarray(self.spacing_mm)

    def arc_mm(self) -> np.ndarray:
        """Arc position (mm) of each centreline point from the segment's middle."""
        steps = np.linalg.norm(np.diff(self.points_mm(), axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(steps)])
        return arc - 0.5 * arc[-1]

    def radius_table_mm(self) -> np.ndarray:
        """Outer radius (mm) per centreline point and angle, ``(n, n_angles)`` (one angle for a
        round tube)."""
        if self.outer_profile_mm:
            return np.asarray(self.outer_profile_mm, dtype=np.float64)
        return np.asarray(self.outer_radius_mm, dtype=np.float64)[:, None]

    def reach_mm(self) -> float:
        """Largest distance (mm) from the centreline that the tumor reaches."""
        return float(self.radius_table_mm().max()) + self.outgrowth_mm

    def body_points_mm(self) -> np.ndarray:
        """The centreline points (mm) within the tumor's length (plus a little slack for the
        refined arc position): every tumor voxel lies within :meth:`reach_mm` of one of them."""
        arc = self.arc_mm()
        keep = np.abs(arc) <= self.half_extent_mm + _END_SLACK_MM
        if not keep.any():
            keep[int(np.argmin(np.abs(arc)))] = True
        return self.points_mm()[keep]

    def middle_vox(self) -> Vec3:
        """The segment's middle in voxel coordinates (the centreline's arc-length midpoint)."""
        arc = self.arc_mm()
        points = np.asarray(self.centreline_vox, dtype=np.float64)
        middle = [float(np.interp(0.0, arc, points[:, axis])) for axis in range(3)]
        return (middle[0], middle[1], middle[2])

    def volume_mm3(self) -> float:
        """The tumor's volume (mm^3) as drawn, before the organ clips its outgrowth: the area
        between the inner and outer boundary, integrated along the centreline (on a bend, each
        direction weighted by the arc length it sweeps: more on the outer side)."""
        arc = self.arc_mm()
        theta = np.linspace(0.0, 2 * math.pi, 144, endpoint=False)
        index = np.arange(len(arc), dtype=np.float64)
        inner, outer = self._radii(
            np.repeat(arc, theta.size),
            np.repeat(index, theta.size),
            np.tile(theta, arc.size),
        )
        inner, outer = (r.reshape(arc.size, theta.size) for r in (inner, outer))
        tangent, normal, binormal = centreline_frames(self.points_mm())
        curvature = np.gradient(tangent, arc, axis=0)  # towards the bend's centre, 1/mm
        bend = np.einsum("ij,ij->i", curvature, normal)[:, None] * np.cos(theta)
        bend += np.einsum("ij,ij->i", curvature, binormal)[:, None] * np.sin(theta)
        # The integral of (1 - bend rho) rho d rho from the inner to the outer boundary.
        swept = (outer**2 - inner**2) / 2 - bend * (outer**3 - inner**3) / 3
        area = 2 * math.pi * swept.mean(axis=1)
        return float(np.sum(0.5 * (area[1:] + area[:-1]) * np.diff(arc)))

    # -- profiles --------------------------------------------------------------------------
    def _along(self, s: np.ndarray) -> np.ndarray:
        """Thickening profile ``f(s)`` in [0, 1] along the segment (smoothstep shoulders)."""
        if self.shoulder_mm <= 0:
            return (np.abs(s) <= 0.5 * self.length_mm).astype(np.float64)
        u = np.clip((self.half_extent_mm - np.abs(s)) / self.shoulder_mm, 0.0, 1.0)
        return u * u * (3.0 - 2.0 * u)

    def _arc_half_width(self) -> tuple[float, float]:
        """(half the whole arc, taper width), both in radians."""
        arc = math.radians(self.arc_deg)
        taper = min(ARC_TAPER_FRACTION * arc, 2 * math.pi - arc)
        return 0.5 * (arc + taper), taper

    def _around(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Profile ``a(theta)`` in [0, 1] and the angular offset (rad) from the arc's centre."""
        if self.annular:
            return np.ones_like(theta), np.zeros_like(theta)
        turn = theta - math.radians(self.arc_center_deg) + math.pi
        offset = np.abs(np.mod(turn, 2 * math.pi) - math.pi)
        half, taper = self._arc_half_width()
        if taper <= 0:
            return (offset <= half).astype(np.float64), offset
        u = np.clip((half - offset) / taper, 0.0, 1.0)
        return u * u * (3.0 - 2.0 * u), offset

    def _outer_radius(self, index: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``R`` at fractional centreline index and angle (bilinear in the radius table)."""
        table = self.radius_table_mm()
        n, n_angles = table.shape
        i = np.clip(index, 0.0, n - 1.0)
        i0 = np.minimum(np.floor(i).astype(np.int64), max(n - 2, 0))
        wi = i - i0
        i1 = np.minimum(i0 + 1, n - 1)
        if n_angles == 1:
            return (1 - wi) * table[i0, 0] + wi * table[i1, 0]
        j = np.mod(theta, 2 * math.pi) * (n_angles / (2 * math.pi))
        j0 = np.floor(j).astype(np.int64) % n_angles
        wj = j - np.floor(j)
        j1 = (j0 + 1) % n_angles
        low = (1 - wj) * table[i0, j0] + wj * table[i0, j1]
        high = (1 - wj) * table[i1, j0] + wj * table[i1, j1]
        return (1 - wi) * low + wi * high

    def _radii(
        self, s: np.ndarray, index: np.ndarray, theta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inner and outer boundary (mm from the centreline) at arc positions ``s``, fractional
        centreline indices ``index`` and angles ``theta``."""
        outer = self._outer_radius(index, theta)
        weight = self._along(s) * self._around(theta)[0]
        room = np.maximum(outer - self.min_lumen_mm, 0.0)
        inner = outer - np.minimum(self.thickness_mm * weight, room)
        return inner, outer + self.outgrowth_mm * weight

    # -- records ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        data = {
            "centreline_vox": self.centreline_vox,
            "outer_radius_mm": self.outer_radius_mm,
            "length_mm": self.length_mm,
            "shoulder_mm": self.shoulder_mm,
            "thickness_mm": self.thickness_mm,
            "outgrowth_mm": self.outgrowth_mm,
            "arc_deg": self.arc_deg,
            "arc_center_deg": self.arc_center_deg,
            "min_lumen_mm": self.min_lumen_mm,
            "spacing_mm": self.spacing_mm,
        }
        if self.outer_profile_mm:
            data["outer_profile_mm"] = self.outer_profile_mm
        return plain_json(data)  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> WallSpec:
        values = dict(data)

        def floats(key: str) -> tuple[float, ...]:
            return tuple(float(v) for v in values.get(key, ()))  # type: ignore[attr-defined]

        def rows(key: str) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(v) for v in row) for row in values.get(key, ()))  # type: ignore[attr-defined]

        values["centreline_vox"] = rows("centreline_vox")
        values["outer_radius_mm"] = floats("outer_radius_mm")
        values["outer_profile_mm"] = rows("outer_profile_mm")
        values["spacing_mm"] = floats("spacing_mm")
        return cls(**values)  # type: ignore[arg-type]


def centreline_frames(points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent, normal and binormal (each ``(n, 3)``, unit) along a polyline in mm.

    The normal at the point nearest the arc-length midpoint is the scan axis most perpendicular
    to the tangent there (the first of equals), made perpendicular; from there it is carried
    along both ways by parallel transport (no twist), and the binormal is ``tangent x normal``.
    Angles around the centreline are measured from the normal towards the binormal.

    Examples
    --------
    >>> t, n, b = centreline_frames(np.array([[0.0, 0, z] for z in range(5)]))
    >>> t[2].tolist(), n[2].tolist(), b[2].tolist()
    ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    """
    points = np.asarray(points_mm, dtype=np.float64)
    tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    middle = int(np.argmin(np.abs(arc - 0.5 * arc[-1])))
    normal = np.empty_like(points)
    normal[middle] = _perpendicular_axis(tangent[middle])
    for order in (range(middle + 1, len(points)), range(middle - 1, -1, -1)):
        previous = middle
        for k in order:
            carried = normal[previous] - np.dot(normal[previous], tangent[k]) * tangent[k]
            size = float(np.linalg.norm(carried))
            normal[k] = carried / size if size > 1e-9 else _perpendicular_axis(tangent[k])
            previous = k
    binormal = np.cross(tangent, normal)
    return tangent, normal, binormal


def _perpendicular_axis(tangent: np.ndarray) -> np.ndarray:
    """The scan axis most perpendicular to ``tangent`` (first of equals), made perpendicular."""
    axis = np.zeros(3)
    axis[int(np.argmin(np.abs(tangent)))] = 1.0
    axis -= np.dot(axis, tangent) * tangent
    return axis / np.linalg.norm(axis)


def _check_spacing(wall: WallSpec, spacing_mm: Sequence[float]) -> None:
    if not np.allclose(wall.spacing_mm, spacing_mm, rtol=1e-5, atol=0.0):
        raise ValueError(
            f"WallSpec.spacing_mm: the centreline was drawn at spacing {list(wall.spacing_mm)} "
            f"mm, rendered at {list(spacing_mm)} mm"
        )


def wall_box(
    wall: WallSpec, spacing_mm: Sequence[float], volume_shape: Sequence[int], margin_mm: float
) -> Box:
    """The crop that holds the whole wall tumor plus ``margin_mm``, clipped to the volume."""
    _check_spacing(wall, spacing_mm)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    body = wall.body_points_mm() / spacing
    reach = (wall.reach_mm() + margin_mm) / spacing
    lo = np.maximum(np.floor(body.min(axis=0) - reach).astype(int), 0)
    hi = np.minimum(np.ceil(body.max(axis=0) + reach).astype(int) + 1, np.asarray(volume_shape))
    hi = np.maximum(hi, np.minimum(lo + 1, np.asarray(volume_shape)))
    lo = np.minimum(lo, hi - 1)
    return Box(
        tuple(int(v) for v in lo),  # type: ignore[arg-type]
        tuple(int(v) for v in hi - lo),  # type: ignore[arg-type]
    )


def wall_field(
    wall: WallSpec, spacing_mm: Sequence[float], box: Box
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (mm, negative inside) and normalized depth of ``wall`` in ``box``, float32.

    The depth is 0 at the surface and 1 half the tumor's plateau thickness (thickness plus
    outgrowth) inside it.

    Examples
    --------
    >>> line = tuple((10.0, 10.0, float(k)) for k in range(41))
    >>> wall = WallSpec(line, (8.0,) * 41, 20.0, 4.0, 5.0, 0.0, 360.0, 0.0, 1.0, (1.0,) * 3)
    >>> distance, depth = wall_field(wall, (1.0, 1.0, 1.0), Box((0, 0, 0), (21, 21, 41)))
    >>> [round(float(distance[10, i, 20]), 3) for i in (10, 13, 16, 18, 19)]
    [3.0, 0.0, -2.0, 0.0, 1.0]
    >>> round(float(distance[10, 16, 34]), 3)  # past the segment's end: 34 - 20 - 12 mm
    2.0
    """
    from scipy.spatial import cKDTree  # lazy: 80 ms of import that only wall tumors need

    _check_spacing(wall, spacing_mm)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    points = wall.points_mm()
    tangent, normal, binormal = centreline_frames(points)
    arc = wall.arc_mm()
    axes = [(o + np.arange(n)) * s for o, n, s in zip(box.origin, box.shape, spacing)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    _, nearest = cKDTree(points).query(grid, k=1)
    grid -= points[nearest]
    frames = np.stack([tangent, normal, binormal], axis=1)  # (n, 3, 3): rows t, n, b
    local = np.einsum("kij,kj->ki", frames[nearest], grid)  # offset in the nearest frame
    del grid
    along, x, y = local[:, 0], local[:, 1], local[:, 2]
    # A voxel off an inner point's normal plane by more than half a step lies where normal
    # planes cross (farther out than the bend's radius): its distance to the centreline is the
    # distance to the point. Only past the ends does the centreline extend along its tangent.
    steps = np.diff(arc)
    half_step = 0.5 * np.concatenate([[np.inf], np.minimum(steps[:-1], steps[1:]), [np.inf]])
    kept = np.clip(along, -half_step[nearest], half_step[nearest])
    rho = np.sqrt(x * x + y * y + (along - kept) ** 2)
    s = arc[nearest] + kept
    theta = np.arctan2(y, x)
    local_step = steps[np.minimum(nearest, len(steps) - 1)]
    index = nearest + kept / np.maximum(local_step, 1e-9)
    inner, outer = wall._radii(s, index, theta)
    distance = np.maximum(inner - rho, rho - outer)
    np.maximum(distance, np.abs(s) - wall.half_extent_mm, out=distance)
    if not wall.annular:
        half, _ = wall._arc_half_width()
        np.maximum(distance, rho * (wall._around(theta)[1] - half), out=distance)
    distance32 = distance.astype(np.float32).reshape(box.shape)
    half_thickness = max(0.5 * (wall.thickness_mm + wall.outgrowth_mm), 0.5)
    depth = np.clip(distance32 * np.float32(-1.0 / half_thickness), 0.0, 1.0)
    return distance32, depth
