"""The phantom's scene: its tissue table, the voxel grid it is painted on, and implicit shapes.

Anatomy is modelled in world mm (the FOV centre at 0). A :class:`Scene` holds the grid, the
tissue map being painted, the random stream and the patient's size factors, and paints a mask
as one tissue by priority; :meth:`Scene.fork` gives a view of the same scene drawing from
another random stream. The shapes are implicit functions on open world grids: ellipsoids
(negative inside), their smooth union, Chaikin-smoothed paths and tapered capsules along them,
with :func:`tube` painting such a path as one tissue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

import numpy as np
from scipy import ndimage

__all__ = [
    "TISSUES",
    "TISSUE_ID",
    "TISSUE_LABEL",
    "TISSUE_PRIORITY",
    "Box",
    "Scene",
    "Segment",
    "VesselTree",
    "capsules",
    "ellipsoid_f",
    "organ_box",
    "rotation",
    "smooth_min",
    "smooth_path",
    "tube",
]

#: Tissue name -> (HU in portal-venous phase, label id, paint priority). A tissue is painted only
#: over tissues of equal or lower priority: organs stop at the muscle wall, bone cuts everything.
TISSUES: dict[str, tuple[float, int, int]] = {
    "air": (-1000.0, 0, 10),
    "visceral_fat": (-90.0, 0, 1),
    "subcutaneous_fat": (-100.0, 0, 9),
    "skin": (30.0, 0, 9),
    "muscle": (50.0, 0, 6),
    "lung": (-850.0, 0, 3),
    "heart": (130.0, 0, 3),
    "bowel_wall": (70.0, 0, 2),
    "bowel_fluid": (15.0, 0, 2),
    "stool": (-30.0, 0, 2),
    "gas": (-900.0, 0, 2),
    "liver": (103.0, 1, 4),
    "spleen": (112.0, 7, 4),
    "gallbladder": (8.0, 0, 5),
    "pancreas": (100.0, 3, 5),
    "kidney_cortex": (170.0, 5, 5),
    "kidney_medulla": (120.0, 5, 5),
    "renal_sinus_fat": (-60.0, 0, 5),
    "urine": (10.0, 0, 5),
    "aorta": (180.0, 8, 7),
    "vein": (150.0, 8, 7),
    "portal_vein": (172.0, 8, 7),
    "disc": (85.0, 0, 8),
    "csf": (20.0, 0, 8),
    "cancellous_bone": (250.0, 9, 8),
    "cortical_bone": (700.0, 9, 8),
    # Added later, so every older tissue keeps its index. The colon and esophagus labels hold the
    # wall and the lumen (as TotalSegmentator's masks do); the uterus, its endometrium.
    # An enhancing colon wall in this portal-venous phase (typical 70-90 HU); its 3 mm on 2 mm
    # voxels reads ~40-70 HU after partial volume with the lumen and the fat.
    "colon_wall": (85.0, 10, 2),
    "colon_gas": (-1000.0, 10, 2),
    "colon_fluid": (12.0, 10, 2),
    "esophagus_wall": (55.0, 11, 3),
    "esophagus_gas": (-1000.0, 11, 3),
    "myometrium": (108.0, 12, 3),
    "endometrium": (65.0, 12, 3),
}
TISSUE_ID = {name: i for i, name in enumerate(TISSUES)}
TISSUE_PRIORITY = np.array([p for _, _, p in TISSUES.values()], dtype=np.uint8)
TISSUE_LABEL = np.array([lab for _, lab, _ in TISSUES.values()], dtype=np.uint8)

Segment = tuple[np.ndarray, np.ndarray, float, float]  # start, end (mm), radius at each end (mm)
Box = tuple[slice, slice, slice]
VesselTree = tuple[list[Segment], float]  # its segments and HU, drawn into the image, not the map


@dataclass
class Scene:
    """The voxel grid (world mm per voxel index), the tissue map being painted, the random stream
    and the patient's size factors (lateral/AP ``gx``, ``gy``; cranio-caudal ``gz``)."""

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    spacing: tuple[float, float, float]
    tissue: np.ndarray
    rng: np.random.Generator
    g: tuple[float, float, float]

    def fork(self, rng: np.random.Generator) -> Scene:
        """The same grid, patient and tissue map (shared, not copied) drawing from ``rng``."""
        return replace(self, rng=rng)

    def at(self, x: float, y: float, z: float, jitter_mm: float = 0.0) -> np.ndarray:
        """World point (mm) of a reference-anatomy position, scaled to this patient, jittered."""
        return np.array([x, y, z]) * self.g + self.rng.normal(0.0, jitter_mm, 3)

    def size(self, *radii_mm: float, sd: float = 0.06) -> np.ndarray:
        """Reference radii (mm) scaled to this patient, each times a random factor ~ 1 +- sd."""
        return np.array(radii_mm) * self.g * self.rng.normal(1.0, sd, len(radii_mm)).clip(0.8, 1.2)

    def box(
        self,
        lo: Sequence[float] | np.ndarray,
        hi: Sequence[float] | np.ndarray,
        within: Box | None = None,
    ) -> Box | None:
        """Voxel slices whose centres lie in the world box [lo, hi] (mm); None when empty."""
        out = []
        for a, (axis, s) in enumerate(zip(self.axes, self.spacing)):
            i0 = max(int(np.ceil((lo[a] - axis[0]) / s)), 0)
            i1 = min(int(np.floor((hi[a] - axis[0]) / s)) + 1, axis.size)
            if within is not None:
                i0, i1 = max(i0, within[a].start), min(i1, within[a].stop)
            if i0 >= i1:
                return None
            out.append(slice(i0, i1))
        return (out[0], out[1], out[2])

    def xyz(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open (broadcastable) world-coordinate grids (mm, float32) of a box."""
        x, y, z = (axis[sl] for axis, sl in zip(self.axes, box))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def noise(self, shape: tuple[int, ...], scale_mm: float) -> np.ndarray:
        """Smooth zero-mean unit-sd random field (float32) varying over about ``scale_mm``."""
        coarse = [
            max(3, int(np.ceil(2.0 * n * s / scale_mm)) + 1) for n, s in zip(shape, self.spacing)
        ]
        field = ndimage.gaussian_filter(self.rng.standard_normal(coarse, dtype=np.float32), 1.0)
        field /= max(float(field.std()), 1e-6)
        return _resize_linear(field, shape)

    def paint(
        self, box: Box | None, mask: np.ndarray, name: str, onto: Sequence[str] | None = None
    ) -> None:
        """Set ``mask`` voxels of ``box`` to tissue ``name`` where it does not overwrite a tissue
        of higher priority (or, with ``onto``, only where the current tissue is one of those)."""
        if box is None:
            return
        view = self.tissue[box]
        t = TISSUE_ID[name]
        if onto is None:
            allowed = TISSUE_PRIORITY[view] <= TISSUE_PRIORITY[t]
        else:
            allowed = np.isin(view, [TISSUE_ID[n] for n in onto])
        view[mask & allowed] = t


def _resize_linear(field: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Separable linear interpolation of ``field`` onto ``shape`` (corners aligned), float32;
    several times faster than ``scipy.ndimage.zoom(order=1)`` for upsampling noise."""
    for axis, n in enumerate(shape):
        c = field.shape[axis]
        pos = np.linspace(0.0, c - 1.0, n, dtype=np.float32)
        i0 = np.minimum(pos.astype(np.intp), c - 2)
        weight = (pos - i0).astype(np.float32)
        weight = weight.reshape([n if a == axis else 1 for a in range(field.ndim)])
        lo = np.take(field, i0, axis=axis)
        field = lo + (np.take(field, i0 + 1, axis=axis) - lo) * weight
    return field


def rotation(ax_deg: float, ay_deg: float, az_deg: float) -> np.ndarray:
    """Rotation matrix Rz @ Ry @ Rx (angles in degrees about world x, y, z)."""
    a, b, c = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ellipsoid_f(
    xyz: tuple[np.ndarray, ...],
    center: np.ndarray,
    radii: np.ndarray,
    rot: np.ndarray | None = None,
    taper: float = 0.0,
) -> np.ndarray:
    """Normalized ellipsoidal radius minus 1 (negative inside, float32) on open grids ``xyz``.

    ``rot`` turns the ellipsoid's own axes into world axes; ``taper`` widens the two first
    axes towards the ellipsoid's +third axis (egg shape: 0.3 -> 30 % wider at the top).
    """
    d = [g - np.float32(c) for g, c in zip(xyz, center)]
    radii = np.asarray(radii, dtype=np.float32)
    if rot is None:
        u, v, w = d
    else:
        u, v, w = (sum(np.float32(rot[j, i]) * d[j] for j in range(3)) for i in range(3))  # type: ignore[assignment]
    w = w / np.float32(radii[2])
    widen = 1.0 + np.float32(taper) * np.clip(w, -1.0, 1.0) if taper else np.float32(1.0)
    return np.sqrt((u / (radii[0] * widen)) ** 2 + (v / (radii[1] * widen)) ** 2 + w**2) - 1.0


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: the union of two implicit shapes with a fillet of size ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smooth_path(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of a polyline (rows: x, y, z, radius), keeping both ends."""
    for _ in range(iterations):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.vstack(
            [points[:1], np.stack([q, r], 1).reshape(-1, points.shape[1]), points[-1:]]
        )
    return points


def capsules(scene: Scene, box: Box, segments: Sequence[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (mm, negative inside) to a union of tapered capsules in ``box``, and the
    capsule radius (mm) at the nearest centre-line point. Each segment is evaluated only in its
    own bounding box, so long vessel trees stay cheap."""
    shape = tuple(s.stop - s.start for s in box)
    sd = np.full(shape, np.inf, np.float32)
    radius = np.zeros(shape, np.float32)
    pad = 2.0 * max(scene.spacing)
    for p0, p1, r0, r1 in segments:
        reach = max(r0, r1) + pad
        sub = scene.box(np.minimum(p0, p1) - reach, np.maximum(p0, p1) + reach, within=box)
        if sub is None:
            continue
        x, y, z = scene.xyz(sub)
        d = (p1 - p0).astype(np.float32)
        dx, dy, dz = x - np.float32(p0[0]), y - np.float32(p0[1]), z - np.float32(p0[2])
        t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) / max(float(d @ d), 1e-6), 0.0, 1.0)
        dist = np.sqrt((dx - t * d[0]) ** 2 + (dy - t * d[1]) ** 2 + (dz - t * d[2]) ** 2)
        rr = np.float32(r0) + t * np.float32(r1 - r0)
        s = dist - rr
        local = tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(sub, box))
        better = s < sd[local]
        sd[local][better] = s[better]
        radius[local][better] = rr[better]
    return sd, radius


def tube(
    scene: Scene,
    name: str,
    path: np.ndarray,
    wobble_mm: float = 1.0,
    scale_mm: float = 15.0,
    onto: Sequence[str] | None = None,
) -> tuple[Box | None, np.ndarray]:
    """Paint a smooth tube along ``path`` (rows x, y, z, radius in mm); returns its box and
    wobbled signed distance (mm)."""
    reach = float(path[:, 3].max()) + 3.0 * wobble_mm + 2.0 * max(scene.spacing)
    box = scene.box(path[:, :3].min(0) - reach, path[:, :3].max(0) + reach)
    if box is None:
        return None, np.zeros(0, np.float32)
    segments = [(a[:3], b[:3], float(a[3]), float(b[3])) for a, b in pairwise(path)]
    sd, _ = capsules(scene, box, segments)
    if wobble_mm:
        sd += np.float32(wobble_mm) * scene.noise(sd.shape, scale_mm)
    scene.paint(box, sd < 0, name, onto)
    return box, sd


def organ_box(
    scene: Scene, center: np.ndarray, radii: np.ndarray, margin: float = 1.4
) -> Box | None:
    reach = float(np.max(radii)) * margin
    return scene.box(center - reach, center + reach)
