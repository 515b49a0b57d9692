"""Drawing wall tumors of hollow organs: the tube's centreline from its skeleton, then one segment.

The random side of :mod:`tumorsynth.shapes.wall`. :func:`tube_centrelines` traces the organ once
per analysed scan: the 3-D skeleton of the organ mask (scikit-image, on the context's coarse grid
over the organ's bounding box, about 1.5 mm), its 26-connected voxels as a graph weighted by
their distance in mm, and from it the branches: the longest geodesic path of each connected part
(two Dijkstra sweeps), taken away, and again on what remains while the rest is long enough.
Spurs and the small loops a skeleton grows at junctions fall away. Each branch is resampled
every millimetre, smoothed (Gaussian along the arc, ends kept in place) and carries the tube's
inscribed radius along it (the organ's distance transform, which the context already holds).

:func:`draw_wall_shape` draws the thickening (length, thickness, annular or eccentric, shoulders,
outgrowth) from the organ's :class:`~tumorsynth.organs.profile.WallRules`, picks the segment's
middle uniformly along the branches where the whole segment fits, is round enough and keeps clear
of other tumors and excluded voxels, and freezes the segment's centreline and the tube's outer
surface around it (the distance to it at 16 angles) in a :class:`~tumorsynth.shapes.wall.WallSpec`.

The tracing is cached per analysed organ: keyed by the identity of the context's depth grid,
which :meth:`OrganContext.fresh` and :meth:`OrganContext.within` copies share (so every case and
crop of one scan's analysis traces once), checked through a weak reference and dropped when the
grid is garbage-collected. Nothing is added to the context itself.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
from scipy import ndimage as ndi

from tumorsynth._types import RngLike, SizeClass, Vec3, as_rng
from tumorsynth.errors import PlacementError
from tumorsynth.organs.context import OrganContext
from tumorsynth.organs.profile import WallRules
from tumorsynth.shapes.ellipsoid import ShapeSpec
from tumorsynth.shapes.wall import WallSpec, centreline_frames

__all__ = ["TubeBranch", "TubeCentrelines", "draw_wall_shape", "tube_centrelines"]

#: Centreline samples are this far apart (mm), in branches and in specs.
STEP_MM = 1.0
#: The segment's centreline reaches this far (mm) past the tumor's ends.
MARGIN_MM = 8.0
#: Angles at which a spec records the distance to the organ's outer surface.
PROFILE_ANGLES = 16
#: A direction's outer radius is kept under this many times the tube's inscribed radius there
#: (where a ray runs along a fold or into a touching loop).
PROFILE_CAP = 2.0
#: The segment's centreline, once centred in its cross-sections, is smoothed this much (mm).
SEGMENT_SMOOTH_MM = 4.0
_TRIES = 10


@dataclass(frozen=True)
class TubeBranch:
    """One branch of an organ's centreline, in the scan the context was built on.

    ``points_vox`` (n, 3) are ordered voxel coordinates about :data:`STEP_MM` apart, ``arc_mm``
    their arc length from the first, ``radius_mm`` the tube's inscribed radius at each.
    """

    points_vox: np.ndarray
    arc_mm: np.ndarray
    radius_mm: np.ndarray

    @property
    def length_mm(self) -> float:
        return float(self.arc_mm[-1])


@dataclass(frozen=True)
class TubeCentrelines:
    """An organ's traced centreline: its branches, longest first, a KD-tree of all their points
    (mm, in the scan the context was built on) with each point's branch and arc, and the organ
    on the context's coarse grid (bool)."""

    branches: tuple[TubeBranch, ...]
    organ: np.ndarray
    tree: Any = None
    owner: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def longest_mm(self) -> float:
        return max((b.length_mm for b in self.branches), default=0.0)

    def nearest(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Branch index, arc position (mm) and position (mm) of the centreline point nearest
        each of ``points_mm`` (n, 3), all in the scan's frame."""
        _, index = self.tree.query(points_mm, k=1)
        owner = self.owner[index]
        return owner[:, 0].astype(np.int64), owner[:, 1], self.tree.data[index]


_TRACINGS: dict[int, tuple[weakref.ref[np.ndarray], TubeCentrelines]] = {}


def tube_centrelines(context: OrganContext) -> TubeCentrelines:
    """The centreline branches of ``context``'s organ (traced once per analysed organ)."""
    grid = context.depth_mm
    key = id(grid)
    hit = _TRACINGS.get(key)
    if hit is not None and hit[0]() is grid:
        return hit[1]
    traced = _trace(context)
    _TRACINGS[key] = (weakref.ref(grid), traced)
    weakref.finalize(grid, _TRACINGS.pop, key, None)
    return traced


def _trace(context: OrganContext) -> TubeCentrelines:
    from skimage.morphology import skeletonize  # lazy: only hollow organs need scikit-image

    stride = np.asarray(context.stride)
    coarse_spacing = np.asarray(context.spacing_mm) * stride
    mask = context.depth_mm > 0
    skeleton = skeletonize(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    start = np.array([b.start for b in context.bbox], dtype=np.float64)
    smooth_mm = max(4.0, float(coarse_spacing.max()))
    branches = []
    for path in _branches(skeleton, coarse_spacing, min_mm=2.0 * smooth_mm):
        points_mm = (start + path * stride) * np.asarray(context.spacing_mm)
        points_mm = _smooth(_resample(points_mm), smooth_mm)
        points_mm = _resample(points_mm)
        coarse = (points_mm / np.asarray(context.spacing_mm) - start) / stride
        # The distance map runs to the nearest outside cell centre: up to a cell beyond the
        # surface, a little less where the skeleton sits off the axis; unbiased enough to tell
        # a tube that can hold a wall tumor (the spec measures the surface itself, by rays).
        depth = ndi.map_coordinates(context.depth_mm, coarse.T, order=1, mode="nearest")
        radius = ndi.gaussian_filter1d(depth, 3.0 / STEP_MM)
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points_mm, axis=0), axis=1))])
        vox = points_mm / np.asarray(context.spacing_mm)
        branches.append(TubeBranch(vox, arc, np.maximum(radius, 0.0)))
    branches.sort(key=lambda b: -b.length_mm)
    if not branches:
        return TubeCentrelines((), mask)
    from scipy.spatial import cKDTree  # lazy, as in tumorsynth.shapes.wall

    spacing = np.asarray(context.spacing_mm)
    tree = cKDTree(np.concatenate([b.points_vox * spacing for b in branches]))
    index = np.concatenate([np.full(len(b.arc_mm), i) for i, b in enumerate(branches)])
    owner = np.stack([index.astype(np.float64), np.concatenate([b.arc_mm for b in branches])], 1)
    return TubeCentrelines(tuple(branches), mask, tree, owner)


def _branches(skeleton: np.ndarray, spacing: np.ndarray, min_mm: float) -> list[np.ndarray]:
    """Ordered paths (grid indices, (n, 3)) through the voxels of ``skeleton`` (bool grid of
    ``spacing`` mm): the longest geodesic path of each 26-connected part, removed, and again on
    the rest, while paths of ``min_mm`` or more remain."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, dijkstra

    voxels = np.argwhere(skeleton)
    n = len(voxels)
    if n < 2:
        return []
    lookup = np.full(np.asarray(skeleton.shape) + 2, -1, dtype=np.int64)  # padded: no bounds
    lookup[tuple((voxels + 1).T)] = np.arange(n)
    rows, cols, weights = [], [], []
    for offset in np.ndindex(3, 3, 3):
        if offset <= (1, 1, 1):  # one of each opposite pair, not the voxel itself
            continue
        step = np.asarray(offset) - 1
        found = lookup[tuple((voxels + 1 + step).T)]
        hit = found >= 0
        rows.append(np.flatnonzero(hit))
        cols.append(found[hit])
        weights.append(np.full(int(hit.sum()), float(np.linalg.norm(step * spacing))))
    graph = coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()
    graph = (graph + graph.T).tocsr()
    alive = np.arange(n)
    paths: list[np.ndarray] = []
    min_nodes = int(min_mm / float(np.linalg.norm(spacing))) + 1
    while len(alive) >= max(2, min_nodes):
        sub = graph[alive][:, alive]
        n_parts, part = connected_components(sub, directed=False)
        taken = np.zeros(len(alive), dtype=bool)
        for label in range(n_parts):
            members = np.flatnonzero(part == label)
            if len(members) < max(2, min_nodes):
                continue
            first = dijkstra(sub, indices=int(members[0]))
            end_a = int(members[np.argmax(first[members])])
            dist, previous = dijkstra(sub, indices=end_a, return_predecessors=True)
            end_b = int(members[np.argmax(dist[members])])
            if dist[end_b] < min_mm:
                continue
            path = [end_b]
            while path[-1] != end_a:
                path.append(int(previous[path[-1]]))
            taken[path] = True
            paths.append(voxels[alive[path[::-1]]])
        if not taken.any():
            break
        alive = alive[~taken]
    return paths


def _resample(points_mm: np.ndarray) -> np.ndarray:
    """The polyline resampled at equal arc steps of at most :data:`STEP_MM`."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points_mm, axis=0), axis=1))])
    count = max(2, int(math.ceil(arc[-1] / STEP_MM)) + 1)
    at = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(at, arc, points_mm[:, a]) for a in range(3)], axis=1)


def _smooth(points_mm: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing along the polyline (samples ~1 mm apart) that keeps its ends: the ends
    are padded by point reflection, so straight stretches stay straight up to the end."""
    pad = min(len(points_mm) - 1, int(math.ceil(3 * sigma_mm / STEP_MM)))
    if pad < 1:
        return points_mm
    head = 2 * points_mm[0] - points_mm[pad:0:-1]
    tail = 2 * points_mm[-1] - points_mm[-2 : -pad - 2 : -1]
    padded = np.concatenate([head, points_mm, tail])
    smooth = ndi.gaussian_filter1d(padded, sigma_mm / STEP_MM, axis=0, mode="nearest")
    return smooth[pad : pad + len(points_mm)]


# -- the random draw ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Thickening:
    length_mm: float
    shoulder_mm: float
    thickness_mm: float
    outgrowth_mm: float
    arc_deg: float
    arc_center_deg: float

    @property
    def half_extent_mm(self) -> float:
        return 0.5 * (self.length_mm + self.shoulder_mm)


def _draw_thickening(rules: WallRules, size: SizeClass, rng: np.random.Generator) -> _Thickening:
    """One draw of the thickening (every value drawn, annular or not, so the stream of draws
    does not depend on which it is)."""
    length = float(rng.uniform(*rules.length_mm[size]))
    shoulder = float(rng.uniform(*rules.shoulder_fraction)) * length
    thickness = float(rng.uniform(*rules.thickness_mm[size]))
    annular = bool(rng.random() < rules.annular_probability[size])
    arc = float(rng.uniform(*rules.arc_deg))
    center = float(rng.uniform(0.0, 360.0))
    outgrowth = float(rng.uniform(*rules.outgrowth_mm))
    return _Thickening(
        length_mm=length,
        shoulder_mm=shoulder,
        thickness_mm=thickness,
        outgrowth_mm=outgrowth,
        arc_deg=360.0 if annular else min(arc, 360.0),
        arc_center_deg=0.0 if annular else center,
    )


def draw_wall_shape(
    context: OrganContext,
    rules: WallRules,
    size_class: SizeClass,
    rng: RngLike = None,
    *,
    where: str = "<image>",
) -> ShapeSpec:
    """Draw one wall tumor of ``context``'s tube-shaped organ (colon, esophagus).

    Drawing changes nothing in ``context``: the caller occupies the tumor's space once it keeps
    the tumor (``context.occupy(spec.center_vox, spec.bounding_radius_mm)``).

    Parameters
    ----------
    context
        The analysed organ (its coarse mask and distance map, occupied spheres, excluded voxels,
        window).
    rules
        The organ profile's wall rules (length, thickness, annular share, arc, shoulders, ...).
    size_class
        Size class whose length and thickness ranges apply.
    rng
        Randomness (numpy Generator or int seed).
    where
        The input named in error messages.

    Returns
    -------
    ShapeSpec
        A spec whose ``wall`` is set; its mass effect is 0 and ``bulge_mm`` the outgrowth.

    Raises
    ------
    PlacementError
        The tube is too short for the segment (no centreline branch that long), too thin
        (inscribed radius under ``rules.min_radius_mm`` wherever the segment would fit), or has
        no room left clear of the other tumors and the excluded voxels.
    """
    rng = as_rng(rng)
    tube = tube_centrelines(context)
    shortest: _Thickening | None = None
    # A tube wide enough for the drawn thickness (plus the lumen kept open) first; then any tube
    # of min_radius_mm, the thickness capped to the lumen there.
    for attempt in range(2 * _TRIES):
        drawn = _draw_thickening(rules, size_class, rng)
        if shortest is None or drawn.half_extent_mm < shortest.half_extent_mm:
            shortest = drawn
        wide = max(rules.min_radius_mm, drawn.thickness_mm + rules.min_lumen_mm)
        sites = _sites(context, tube, drawn, wide if attempt < _TRIES else rules.min_radius_mm)
        if sites:
            branch, seed = sites[int(rng.integers(len(sites)))]
            return _segment_spec(context, tube, branch, seed, drawn, rules)
    assert shortest is not None  # _TRIES > 0
    _raise_no_site(context, tube, rules, size_class, shortest, where)


def _sites(
    context: OrganContext, tube: TubeCentrelines, drawn: _Thickening, min_radius_mm: float
) -> list[tuple[int, int]]:
    """(branch, point) pairs where the segment's middle may go: the whole segment on the branch,
    the tube at least ``min_radius_mm`` round along it, clear of occupied spheres and excluded
    voxels, the middle inside the context's window and slice range."""
    half = drawn.half_extent_mm
    spacing = np.asarray(context.spacing_mm)
    origin = np.asarray(context.origin, dtype=np.float64)
    sites: list[tuple[int, int]] = []
    for b, branch in enumerate(tube.branches):
        ok = (branch.arc_mm >= half) & (branch.arc_mm <= branch.length_mm - half)
        if not ok.any():
            continue
        width = 2 * int(math.ceil(half / STEP_MM)) + 1
        ok &= ndi.minimum_filter1d(branch.radius_mm, width, mode="nearest") >= min_radius_mm
        vox = branch.points_vox - origin
        reach = branch.radius_mm + drawn.outgrowth_mm
        if context.occupied and ok.any():
            pos = vox * spacing
            room = np.full(len(vox), np.inf)
            for sphere in context.occupied:
                gap = np.linalg.norm(pos - np.asarray(sphere.center_mm), axis=1) - sphere.radius_mm
                room = np.minimum(room, gap - reach)
            gap_mm = context.profile.placement.gap_mm
            ok &= ndi.minimum_filter1d(room, width, mode="nearest") >= gap_mm
        if context.exclusion_mm is not None and ok.any():
            clear = context.excluded_clear_at(vox) - reach - context.exclude_margin_mm
            ok &= ndi.minimum_filter1d(clear, width, mode="nearest") >= 0
        if ok.any():
            ok &= _seed_allowed(context, vox)
        sites.extend((b, int(i)) for i in np.flatnonzero(ok))
    return sites


def _seed_allowed(context: OrganContext, vox: np.ndarray) -> np.ndarray:
    """Points (voxels of the context's volume) inside its window and slice range."""
    index = context.voxel_to_coarse(vox)
    ok = np.ones(len(vox), dtype=bool)
    if context.window is not None:
        for axis, cells in enumerate(context.window):
            ok &= (index[:, axis] >= cells.start) & (index[:, axis] < cells.stop)
    lo, hi = context.profile.placement.slice_range
    if (lo, hi) != (0.0, 1.0):
        n = context.depth_mm.shape[2]
        ok &= (index[:, 2] >= math.floor(lo * n)) & (index[:, 2] < math.ceil(hi * n))
    return ok


def _segment_points_mm(branch: TubeBranch, spacing: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Centreline points (mm, the scan's frame) at arc positions ``at`` along ``branch``,
    extended straight past the branch's ends where needed."""
    points = branch.points_vox * spacing
    arc = branch.arc_mm
    out = np.stack([np.interp(at, arc, points[:, a]) for a in range(3)], axis=1)
    look = min(len(points) - 1, int(math.ceil(3.0 / STEP_MM)))
    head = points[0] - points[look]
    tail = points[-1] - points[-1 - look]
    before, after = at < 0, at > arc[-1]
    out[before] = points[0] + (-at[before])[:, None] * head / np.linalg.norm(head)
    out[after] = points[-1] + (at[after] - arc[-1])[:, None] * tail / np.linalg.norm(tail)
    return out


def _segment_spec(
    context: OrganContext,
    tube: TubeCentrelines,
    branch_index: int,
    seed: int,
    drawn: _Thickening,
    rules: WallRules,
) -> ShapeSpec:
    """The spec of the segment centred on point ``seed`` of branch ``branch_index``: its
    centreline (an odd number of points, the middle one at the seed, centred in the tube's
    cross-sections), the outer surface around it and the thickening."""
    spacing = np.asarray(context.spacing_mm)
    branch = tube.branches[branch_index]
    half = drawn.half_extent_mm + MARGIN_MM
    at = branch.arc_mm[seed] + np.linspace(-half, half, 2 * int(math.ceil(half / STEP_MM)) + 1)
    window = (branch.arc_mm >= at[0]) & (branch.arc_mm <= at[-1])
    local_radius = float(branch.radius_mm[window].max()) if window.any() else 0.0
    own = _Own(branch_index, np.clip(at, 0.0, branch.length_mm), local_radius)
    origin_mm = np.asarray(context.origin) * spacing
    points_mm = _segment_points_mm(branch, spacing, at) - origin_mm  # the context's volume
    centring = _centring_shift(points_mm, _outer_profile(context, tube, own, points_mm))
    vox = np.round(_smooth(points_mm + centring, SEGMENT_SMOOTH_MM) / spacing, 3)
    centreline: tuple[Vec3, ...] = tuple((float(a), float(b), float(c)) for a, b, c in vox)
    points_mm = vox * spacing
    profile = np.round(_outer_profile(context, tube, own, points_mm), 2)
    radius = profile.min(axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points_mm, axis=0), axis=1))])
    arc -= 0.5 * arc[-1]
    plateau = np.abs(arc) <= 0.5 * drawn.length_mm  # the shoulders thin out on their own
    room = float(radius[plateau].min()) - rules.min_lumen_mm
    thickness = float(min(drawn.thickness_mm, max(room, 0.5)))
    wall = WallSpec(
        centreline_vox=centreline,
        outer_radius_mm=tuple(float(r) for r in radius),
        length_mm=drawn.length_mm,
        shoulder_mm=drawn.shoulder_mm,
        thickness_mm=thickness,
        outgrowth_mm=drawn.outgrowth_mm,
        arc_deg=drawn.arc_deg,
        arc_center_deg=drawn.arc_center_deg,
        min_lumen_mm=float(rules.min_lumen_mm),
        spacing_mm=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        outer_profile_mm=tuple(tuple(float(v) for v in row) for row in profile),
    )
    middle = len(centreline) // 2
    tangent, normal, binormal = (f[middle] for f in centreline_frames(points_mm))
    rotation = np.stack([tangent, normal, binormal], axis=1)
    across = float(radius[middle]) + drawn.outgrowth_mm
    return ShapeSpec(
        center_vox=wall.middle_vox(),
        radii_mm=(0.5 * drawn.length_mm, across, across),
        rotation=tuple(float(v) for v in rotation.ravel()),
        bulge_mm=drawn.outgrowth_mm,
        wall=wall,
    )


def _centring_shift(points_mm: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Move (mm, (n, 3)) of each point to the centroid of its cross-section (the polygon of the
    outer surface at the profile's angles), smoothed along the centreline and at most half the
    inscribed radius: a skeleton on a coarse grid sits up to half a cell off the tube's axis."""
    _, normal, binormal = centreline_frames(points_mm)
    theta = 2 * math.pi * np.arange(profile.shape[1]) / profile.shape[1]
    x, y = profile * np.cos(theta), profile * np.sin(theta)
    x1, y1 = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    area = x * y1 - x1 * y  # twice each triangle's (centre, corner j, corner j + 1) area
    total = np.maximum(area.sum(axis=1), 1e-9)
    cx = (area * (x + x1)).sum(axis=1) / (3 * total)
    cy = (area * (y + y1)).sum(axis=1) / (3 * total)
    size = np.hypot(cx, cy)
    scale = np.minimum(1.0, 0.5 * profile.min(axis=1) / np.maximum(size, 1e-9))
    shift = (cx * scale)[:, None] * normal + (cy * scale)[:, None] * binormal
    return ndi.gaussian_filter1d(shift, 2.0 / STEP_MM, axis=0, mode="nearest")


@dataclass(frozen=True)
class _Own:
    """A segment's own part of the tube: its branch, the arc position of each of its points
    on it, and the tube's largest inscribed radius along it (mm)."""

    branch: int
    at: np.ndarray
    radius_mm: float


def _outer_profile(
    context: OrganContext,
    tube: TubeCentrelines,
    own: _Own,
    points_mm: np.ndarray,
) -> np.ndarray:
    """Distance (mm) from each point to the organ's outer surface at :data:`PROFILE_ANGLES`
    angles in the centreline frame, ``(n, PROFILE_ANGLES)``: rays marched through the coarse
    mask (nearest cell, so a crossing lies on a cell face), smoothed around and along, each
    direction capped at :data:`PROFILE_CAP` times the point's smallest.

    A ray also ends where it enters another part of the tube: where the nearest centreline
    point is on another branch, or more than twice the radius (plus 3 mm) of arc away from the
    ray's origin along its own, and lies more than 1.5 radii from the origin (so a skeleton's
    stray loop inside the same lumen does not count). A ray that crosses into another loop of
    the colon, touching this one at a bend, stops there.
    """
    _, normal, binormal = centreline_frames(points_mm)
    theta = 2 * math.pi * np.arange(PROFILE_ANGLES) / PROFILE_ANGLES
    directions = (
        np.cos(theta)[None, :, None] * normal[:, None, :]
        + np.sin(theta)[None, :, None] * binormal[:, None, :]
    )
    spacing = np.asarray(context.spacing_mm)
    stride = np.asarray(context.stride)
    coarse_spacing = spacing * stride
    step = 0.25 * float(coarse_spacing.min())
    longest = PROFILE_CAP * (float(context.depth_mm.max()) + 2 * float(coarse_spacing.max()))
    radii = np.arange(1, int(math.ceil(longest / step)) + 1) * step
    start = np.array([b.start for b in context.bbox], dtype=np.float64) - np.asarray(context.origin)
    shape = np.asarray(context.depth_mm.shape)
    mask = tube.organ
    reach, near = 2.0 * own.radius_mm + 3.0, 1.5 * own.radius_mm
    origin_mm = np.asarray(context.origin) * spacing
    ray = points_mm[:, None, None, :] + directions[:, :, None, :] * radii[None, None, :, None]
    cell = np.rint((ray / spacing - start) / stride).astype(np.int64)
    inside = np.all((cell >= 0) & (cell < shape), axis=-1)
    cell[~inside] = 0
    inside &= mask[cell[..., 0], cell[..., 1], cell[..., 2]]
    del cell
    # Only samples before a ray's exit from the mask matter, and only those more than half of
    # ``near`` out can be foreign (their nearest centreline point lies within twice their
    # distance from the ray's origin).
    exit_index = np.where((~inside).any(axis=2), np.argmax(~inside, axis=2), len(radii))
    check = (np.arange(len(radii)) < exit_index[..., None]) & (radii > 0.5 * near)
    if check.any():
        owner, arc, where_mm = tube.nearest(ray[check] + origin_mm)
        k = np.nonzero(check)[0]  # each sample's centreline point
        foreign = (owner != own.branch) | (np.abs(arc - own.at[k]) > reach)
        foreign &= np.linalg.norm(where_mm - origin_mm - points_mm[k], axis=1) > near
        inside[check] = ~foreign
    outside = ~inside
    first = np.where(outside.any(axis=2), np.argmax(outside, axis=2), len(radii))
    # The surface lies between the last sample inside and the first outside; a median over the
    # neighbouring angles and points takes the cells' staircase off without reaching past a
    # ray's own exit by more than half a cell (the tumor stays in the organ).
    raw = np.append(radii, radii[-1] + step)[first] - 0.5 * step
    wrapped = np.concatenate([raw[:, -1:], raw, raw[:, :1]], axis=1)
    smooth = ndi.median_filter(wrapped, size=3, mode="nearest")[:, 1:-1]
    smooth = np.minimum(smooth, raw + 0.5 * float(coarse_spacing.min()))
    return np.minimum(smooth, PROFILE_CAP * smooth.min(axis=1, keepdims=True))


def _raise_no_site(
    context: OrganContext,
    tube: TubeCentrelines,
    rules: WallRules,
    size: SizeClass,
    drawn: _Thickening,
    where: str,
) -> NoReturn:
    organ = context.organ
    needed = 2 * drawn.half_extent_mm
    long_enough = [b for b in tube.branches if b.length_mm >= needed]
    asked = (
        f"a {size} wall tumor of {drawn.length_mm:.0f} mm (with its shoulders "
        f"{needed:.0f} mm of tube)"
    )
    if not long_enough:
        raise PlacementError(
            where,
            f"the {organ} is too short for {asked}: the longest stretch of its centreline "
            f"is {tube.longest_mm:.0f} mm",
            fix="ask for a smaller --size, or check that the organ mask holds the whole tube",
        )
    widest = 0.0
    for branch in long_enough:
        ok = (branch.arc_mm >= 0.5 * needed) & (branch.arc_mm <= branch.length_mm - 0.5 * needed)
        width = 2 * int(math.ceil(0.5 * needed / STEP_MM)) + 1
        along = ndi.minimum_filter1d(branch.radius_mm, width, mode="nearest")
        widest = max(widest, float(along[ok].max()) if ok.any() else 0.0)
    if widest < rules.min_radius_mm:
        raise PlacementError(
            where,
            f"the {organ} is too thin for {asked}: a wall tumor needs an inscribed radius of "
            f"{rules.min_radius_mm:g} mm along the segment, the {organ}'s is at most "
            f"{widest:.1f} mm wherever such a segment fits",
            fix="check the organ mask (a collapsed or partly segmented tube?)",
        )
    excluded = (
        f" and {context.exclude_margin_mm:g} mm from the excluded labels"
        if context.exclusion_mm is not None
        else ""
    )
    limits = [
        text
        for text, applies in (
            ("the crop's window", context.window is not None),
            ("the profile's slice range", context.profile.placement.slice_range != (0.0, 1.0)),
        )
        if applies
    ]
    inside = f", its middle inside {' and '.join(limits)}" if limits else ""
    raise PlacementError(
        where,
        f"no room left in the {organ} for {asked} clear of the {len(context.occupied)} "
        f"tumors already there{excluded}{inside}",
        fix="ask for fewer or smaller tumors",
    )
