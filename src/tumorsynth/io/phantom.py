"""A procedural, clearly synthetic, contrast-enhanced abdominal CT phantom with organ labels.

:func:`make_phantom` paints a healthy portal-venous abdomen in world mm (RAS+: ``+x`` patient
left, ``+y`` anterior, ``+z`` superior; FOV centre at world 0): body wall, spine, lower ribs,
liver with portal and hepatic vein trees, gallbladder, spleen, kidneys, pancreas, stomach, bowel,
aorta, IVC and veins, lung bases. Organs are implicit shapes (ellipsoids, tubes) deformed by
smooth noise, painted into a tissue map by priority (the liver stops at the muscle wall, bone
cuts everything); the image is that map in HU, slightly blurred, plus correlated CT noise. The
NIfTI description says it is not a patient; label ids follow the ``"phantom"`` preset of
:mod:`tumorsynth.io.label_maps`, and tumor ids never appear (the phantom is healthy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import nibabel as nib
import numpy as np
from scipy import ndimage

from tumorsynth._types import RngLike
from tumorsynth.errors import InputError
from tumorsynth.io.nifti import Volume

__all__ = ["PHANTOM_DESCRIPTION", "make_phantom"]

#: NIfTI ``descrip`` of both phantom volumes.
PHANTOM_DESCRIPTION = "tumorsynth PHANTOM (synthetic, not a patient)"

#: Tissue name -> (HU in portal-venous phase, label id, paint priority). A tissue is painted only
#: over tissues of equal or lower priority: organs stop at the muscle wall, bone cuts everything.
_TISSUES: dict[str, tuple[float, int, int]] = {
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
}
_T = {name: i for i, name in enumerate(_TISSUES)}
_PRIORITY = np.array([p for _, _, p in _TISSUES.values()], dtype=np.uint8)
_LABEL = np.array([lab for _, lab, _ in _TISSUES.values()], dtype=np.uint8)
_VESSEL_ID = 8
#: Intrahepatic vessels thicker than this radius (mm) leave the liver label, like real masks.
_LABELLED_VESSEL_RADIUS_MM = 3.0
#: Per-seed spread (HU, 1 sd, clipped at 2 sd) of enhancement, like contrast timing varies.
_ENHANCEMENT_SD_HU = {
    "liver": 2.5,
    "spleen": 4.0,
    "pancreas": 3.0,
    "kidney_cortex": 6.0,
    "kidney_medulla": 5.0,
    "aorta": 8.0,
    "vein": 6.0,
    "portal_vein": 6.0,
}
Segment = tuple[np.ndarray, np.ndarray, float, float]  # start, end (mm), radius at each end (mm)
Box = tuple[slice, slice, slice]


@dataclass
class _Scene:
    """The voxel grid (world mm per voxel index), the tissue map being painted, the random stream
    and the patient's size factors (lateral/AP ``gx``, ``gy``; cranio-caudal ``gz``)."""

    axes: tuple[np.ndarray, np.ndarray, np.ndarray]
    spacing: tuple[float, float, float]
    tissue: np.ndarray
    rng: np.random.Generator
    g: tuple[float, float, float]

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
        t = _T[name]
        if onto is None:
            allowed = _PRIORITY[view] <= _PRIORITY[t]
        else:
            allowed = np.isin(view, [_T[n] for n in onto])
        view[mask & allowed] = t


def make_phantom(
    seed: RngLike = 0,
    *,
    shape: Sequence[int] = (192, 160, 96),
    spacing_mm: Sequence[float] = (2.0, 2.0, 2.5),
) -> tuple[Volume, Volume]:
    """Generate a synthetic healthy contrast-enhanced (portal-venous) abdominal CT and its labels.

    Parameters
    ----------
    seed
        Int seed, numpy ``Generator`` or None (fresh entropy). The same int gives identical
        arrays; ``meta["seed"]`` always holds an int that reproduces the result.
    shape
        Voxels along (x, y, z) = (patient left->right, posterior->anterior, inferior->superior),
        i.e. RAS+: the liver lies at world x > 0 (the patient's right), the spleen at x < 0.
        The anatomy lives in world mm around the FOV centre, so a smaller FOV crops it.
    spacing_mm
        Voxel size (mm) along the same axes.

    Returns
    -------
    image, label
        ``image``: int16 Hounsfield units (air about -1000, liver about 105, noise sd in the
        liver about 12-18 HU). ``label``: uint8 ids of the ``"phantom"`` preset: 0 background,
        1 liver, 3 pancreas, 5 kidney (both), 7 spleen, 8 vessel (aorta, IVC, portal, splenic
        and renal veins, intrahepatic vessels wider than 6 mm), 9 bone. Both share the RAS+
        affine ``diag(spacing)`` with the FOV centre at world (0, 0, 0), carry a NIfTI header
        whose description is :data:`PHANTOM_DESCRIPTION`, ``path=None`` and
        ``meta={"phantom": True, "seed": int}``.

    Examples
    --------
    >>> image, label = make_phantom(1, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    >>> image.array.dtype, label.array.dtype, image.spacing_mm
    (dtype('int16'), dtype('uint8'), (4.0, 4.0, 5.0))
    >>> sorted(int(v) for v in np.unique(label.array))
    [0, 1, 3, 5, 7, 8, 9]
    """
    shape_t, spacing = _check_grid(shape, spacing_mm)
    seed_int = _resolve_seed(seed)
    rng = np.random.default_rng(seed_int)
    ax, ay, az = (
        ((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32) for n, s in zip(shape_t, spacing)
    )
    axes = (ax, ay, az)
    gx, gy, gz = (float(v) for v in rng.normal(1.0, 0.035, 3).clip(0.92, 1.08))  # body size
    scene = _Scene(axes, spacing, np.zeros(shape_t, np.uint8), rng, (gx, gy, gz))

    depth2d, rho2d, fat2d = _body(scene)
    _back(scene)
    _ribs(scene, depth2d, fat2d)
    liver_box, trees, hilum = _liver(scene)
    kidney_hila = [_kidney(scene, side) for side in (-1, 1)]
    _spleen(scene)
    pancreas_path = _pancreas(scene)
    _stomach(scene)
    _great_vessels(scene, hilum, kidney_hila, pancreas_path)
    _bowel(scene)
    _thorax(scene, rho2d)

    hu = np.array([v for v, _, _ in _TISSUES.values()], dtype=np.float32)
    for name, sd in _ENHANCEMENT_SD_HU.items():
        hu[_T[name]] += float(np.clip(rng.normal(0.0, sd), -2.0 * sd, 2.0 * sd))
    image = hu[scene.tissue]
    label = _LABEL[scene.tissue]
    if liver_box is not None:
        _liver_detail(scene, image, label, liver_box, trees)
    image = _ct_finish(image, rng, noise_sd_hu=float(rng.uniform(13.0, 16.0)))
    # The scene is modelled with -x toward the patient's right (LPS-like); RAS+ has +x toward the
    # right, and the x axis is symmetric about 0, so mirroring the arrays puts the liver on the
    # patient's right and the spleen on the left, as in every real scan.
    image = np.ascontiguousarray(image[::-1])
    label = np.ascontiguousarray(label[::-1])

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [float(a[0]) for a in axes]
    meta = {"phantom": True, "seed": seed_int}
    return (
        Volume(image, affine, _header(image, affine), None, dict(meta)),
        Volume(label, affine, _header(label, affine), None, dict(meta)),
    )


def _check_grid(
    shape: Sequence[int], spacing_mm: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    if len(shape) != 3 or any(int(n) != n or n < 8 for n in shape):
        raise InputError(
            "make_phantom(shape=...)", f"expected 3 integers >= 8, found {tuple(shape)}"
        )
    if len(spacing_mm) != 3 or not all(np.isfinite(s) and 0.3 <= s <= 20 for s in spacing_mm):
        raise InputError(
            "make_phantom(spacing_mm=...)",
            f"expected 3 finite voxel sizes in [0.3, 20] mm, found {tuple(spacing_mm)}",
        )
    sx, sy, sz = (float(s) for s in spacing_mm)
    return (int(shape[0]), int(shape[1]), int(shape[2])), (sx, sy, sz)


def _resolve_seed(seed: RngLike) -> int:
    """An int that reproduces the phantom: the seed, or one drawn from the Generator/entropy."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise InputError("make_phantom(seed=...)", f"expected a seed >= 0, found {seed}")
        return int(seed)
    if seed is None or isinstance(seed, np.random.Generator):
        return int(np.random.default_rng(seed).integers(2**63))
    raise TypeError(
        f"make_phantom: seed must be an int, a numpy Generator or None, found {type(seed).__name__}"
    )


def _header(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_data_dtype(array.dtype)
    header.set_data_shape(array.shape)
    header.set_zooms(tuple(float(v) for v in np.diag(affine)[:3]))
    header.set_xyzt_units("mm")
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header["descrip"] = PHANTOM_DESCRIPTION.encode("ascii")
    return header


# --------------------------------------------------------------------------- implicit shapes
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


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow for single vectors)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _rotation(ax_deg: float, ay_deg: float, az_deg: float) -> np.ndarray:
    """Rotation matrix Rz @ Ry @ Rx (angles in degrees about world x, y, z)."""
    a, b, c = np.radians([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _ellipsoid_f(
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


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: the union of two implicit shapes with a fillet of size ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smooth_path(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of a polyline (rows: x, y, z, radius), keeping both ends."""
    for _ in range(iterations):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.vstack(
            [points[:1], np.stack([q, r], 1).reshape(-1, points.shape[1]), points[-1:]]
        )
    return points


def _capsules(
    scene: _Scene, box: Box, segments: Sequence[Segment]
) -> tuple[np.ndarray, np.ndarray]:
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


def _tube(
    scene: _Scene,
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
    sd, _ = _capsules(scene, box, segments)
    if wobble_mm:
        sd += np.float32(wobble_mm) * scene.noise(sd.shape, scale_mm)
    scene.paint(box, sd < 0, name, onto)
    return box, sd


def _organ_box(
    scene: _Scene, center: np.ndarray, radii: np.ndarray, margin: float = 1.4
) -> Box | None:
    reach = float(np.max(radii)) * margin
    return scene.box(center - reach, center + reach)


# --------------------------------------------------------------------------- anatomy
def _body(scene: _Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin, subcutaneous fat, muscle wall and the abdominal cavity (visceral fat).

    Returns the 2-D (x, y) depth below the skin (mm), normalized body radius, and the
    subcutaneous fat thickness (mm), used to place ribs and the lung bases.
    """
    x, y, _ = scene.axes
    gx, gy, _ = scene.g
    habitus = float(scene.rng.uniform(0.7, 1.5))  # subcutaneous fat, x its mean thickness
    half_w = 155.0 * gx + 20.0 * (habitus - 1.0)
    half_ant, half_post = 112.0 * gy + 24.0 * (habitus - 1.0), 98.0 * gy + 10.0 * (habitus - 1.0)
    xx, yy = x[:, None], y[None, :]
    half_y = np.where(yy > 0, np.float32(half_ant), np.float32(half_post))
    rho = (np.abs(xx / half_w) ** 2.3 + np.abs(yy / half_y) ** 2.3) ** (1 / 2.3)
    depth2d = (1.0 - rho) * np.maximum(np.hypot(xx, yy), 1e-3) / np.maximum(rho, 1e-6)
    fat2d = habitus * (10.0 + 14.0 * np.clip(yy / half_ant, 0, 1) + 6.0 * np.abs(xx) / half_w)
    ax = np.abs(xx) + 0 * yy
    wall2d = (
        6.0
        + 9.0 * np.clip(ax / half_w, 0, 1) ** 1.5
        + np.where((yy > 0) & (ax > 8) & (ax < 70), 5.0, 0.0)
    )
    wall2d = np.where((yy > 0) & (ax <= 8), 3.0, wall2d).astype(np.float32)
    fat2d = fat2d.astype(np.float32)
    depth = depth2d[:, :, None] + 4.0 * scene.noise(scene.tissue.shape, 80.0)
    wall = (fat2d + wall2d)[:, :, None]
    t = scene.tissue
    t[...] = _T["visceral_fat"]
    t[depth < wall] = _T["muscle"]
    t[depth < fat2d[:, :, None]] = _T["subcutaneous_fat"]
    t[depth < 1.5] = _T["skin"]
    t[depth < 0] = _T["air"]
    return depth2d, rho, fat2d


def _back(scene: _Scene) -> None:
    """Spine (vertebral bodies, discs, canal, posterior arch) and paraspinal and psoas muscles."""
    z = scene.axes[2]
    gx, gy, gz = scene.g
    box = scene.box((-90 * gx, -110 * gy, z[0]), (90 * gx, -15 * gy, z[-1]))
    if box is None:
        return
    xx, yy, zz = scene.xyz(box)
    yv, yc = -45.0 * gy, -72.0 * gy
    for side in (-1, 1):
        para = ((xx - side * 35 * gx) / 30) ** 2 + ((yy + 74 * gy) / 19) ** 2 < 1
        scene.paint(box, para, "muscle", onto=("visceral_fat",))
        r_psoas = np.clip(6.0 + 0.14 * (25 * gz - zz), 0, 24)
        psoas = (xx - side * (20 + r_psoas)) ** 2 + (
            (yy - yv - 0.3 * r_psoas) * 1.15
        ) ** 2 < r_psoas**2
        scene.paint(box, psoas, "muscle", onto=("visceral_fat",))
    period, disc_mm = 36.0 * gz, 8.0
    pos = np.mod(zz - scene.rng.uniform(0, period), period)
    body2d = (xx / 22.0) ** 2 + ((yy - yv) / 17.0) ** 2
    vert = body2d < 1
    disc = pos < disc_mm
    cortex = (body2d > 0.72) | (pos < disc_mm + 2) | (pos > period - 2)
    scene.paint(box, vert & disc, "disc")
    scene.paint(box, vert & ~disc & cortex, "cortical_bone")
    scene.paint(box, vert & ~disc & ~cortex, "cancellous_bone")
    r_canal = np.hypot(xx, yy - yc)
    arch = (
        ((r_canal < 16) & (yy < yc + 4))
        | ((np.abs(xx) < 4) & (yy < yc) & (yy > yc - 22))
        | ((np.abs(xx) < 34) & (np.abs(yy - yc - 2) < 3) & (pos > 16) & (pos < 24))
    )
    scene.paint(box, arch & (r_canal >= 9) & (pos > disc_mm + 1), "cortical_bone")
    scene.paint(box, r_canal < 9, "csf")


def _ribs(scene: _Scene, depth2d: np.ndarray, fat2d: np.ndarray) -> None:
    """Lower ribs (7-12): bony arcs in the body wall, sloping down from the spine to the front."""
    x, y, z = scene.axes
    gz = scene.g[2]
    d_rib = fat2d + 9.0
    ring_i, ring_j = np.nonzero(np.abs(depth2d - d_rib) < 3.5)
    if ring_i.size == 0:
        return
    radial = (depth2d[ring_i, ring_j] - d_rib[ring_i, ring_j]) / 3.5
    phi = np.degrees(np.arctan2(x[ring_i], y[ring_j]))  # 0 anterior, +90 left, +-180 posterior
    zz = z[None, :]
    for k, front_deg in enumerate((45, 50, 55, 60, 100, 125)):
        for side in (-1, 1):
            z0 = (135.0 - 24.0 * k) * gz + scene.rng.normal(0, 4)
            ang = side * phi
            on_arc = (ang > front_deg) & (ang < 162)
            z_rib = z0 - 0.55 * (162.0 - ang)
            dist = np.maximum(np.abs(radial)[:, None], np.abs(zz - z_rib[:, None]) / 5.0)
            bone = (dist < 1.0) & on_arc[:, None]
            ii, kk = np.nonzero(bone)
            sel = (ring_i[ii], ring_j[ii], kk)
            cortex = dist[ii, kk] > 0.55
            current = scene.tissue[sel]
            ok = _PRIORITY[current] <= _PRIORITY[_T["cortical_bone"]]
            scene.tissue[sel] = np.where(
                ok, np.where(cortex, _T["cortical_bone"], _T["cancellous_bone"]), current
            )


def _liver(scene: _Scene) -> tuple[Box | None, list[tuple[list[Segment], float]], np.ndarray]:
    """Liver (right lobe, left lobe and caudate, smoothly joined) and gallbladder. Returns the
    liver's box, its vessel trees (segments, HU; rendered later) and the hilum (mm)."""
    g = scene.g
    lobes = [
        (
            scene.at(-62, 4, 24, 4),
            scene.size(70, 85, 76, sd=0.04),
            _rotation(*scene.rng.normal((0, 20, 0), 5)),
            0.3,
        ),
        (scene.at(-5, 42, 56, 4), scene.size(64, 34, 36, sd=0.04), _rotation(0, -15, 10), 0.0),
        (scene.at(-20, -6, 60, 3), scene.size(28, 26, 36, sd=0.04), None, 0.0),
    ]
    hilum = scene.at(-32, -2, 14, 3)
    box = scene.box(np.array([-150, -100, -70]) * g, np.array([80, 100, 110]) * g)
    if box is None:
        return None, [], hilum
    xyz = scene.xyz(box)
    # visceral surface: the right lobe ends below the hilum medially, lower towards its lateral tip
    underside = (
        hilum[2] - 12.0 + 0.75 * (xyz[0] - hilum[0]) - 0.35 * (xyz[1] - hilum[1]) - xyz[2]
    ) / np.float32(70.0)
    f = np.maximum(_ellipsoid_f(xyz, *lobes[0]), underside)
    for center, radii, rot, taper in lobes[1:]:
        f = _smooth_min(f, _ellipsoid_f(xyz, center, radii, rot, taper), 0.15)
    f += 0.06 * scene.noise(f.shape, 60.0) + 0.025 * scene.noise(f.shape, 20.0)
    scene.paint(box, f < 0, "liver")

    gb_center, gb_radii = scene.at(-35, 42, -8, 4), scene.size(15, 16, 34, sd=0.1)
    gb_box = _organ_box(scene, gb_center, gb_radii)
    if gb_box is not None:
        gb = _ellipsoid_f(scene.xyz(gb_box), gb_center, gb_radii, _rotation(-35, 20, 0))
        scene.paint(gb_box, gb < 0, "gallbladder")

    def inside(p: np.ndarray) -> bool:
        idx = [
            int(np.rint((p[a] - scene.axes[a][0]) / scene.spacing[a])) - box[a].start
            for a in range(3)
        ]
        return all(0 <= i < n for i, n in zip(idx, f.shape)) and bool(f[tuple(idx)] < -0.03)

    portal = _vessel_tree(
        scene,
        inside,
        [
            (hilum, (-1.0, 0.1, 0.45), 6.5),
            (hilum, (0.4, 0.8, 0.45), 5.5),
            (hilum, (-0.6, 0.6, -0.2), 4.0),
        ],
    )
    ivc = scene.at(-20, -16, 80)
    hepatic = _vessel_tree(
        scene,
        inside,
        [
            (ivc + (-8, 2, 0), (-0.85, 0.25, -0.45), 6.0),
            (ivc + (2, 8, 2), (-0.15, 0.85, -0.5), 5.5),
            (ivc + (8, 6, 2), (0.7, 0.65, -0.3), 5.0),
        ],
    )
    return box, [(portal, 180.0), (hepatic, 168.0)], hilum


def _vessel_tree(
    scene: _Scene,
    inside: Callable[[np.ndarray], bool],
    roots: Sequence[tuple[np.ndarray, Sequence[float], float]],
    min_radius_mm: float = 1.2,
    max_segments: int = 160,
) -> list[Segment]:
    """Random branching tree of capsule segments (mm) that stays where ``inside`` is True:
    each node continues its direction (radius x 0.92, bent 5-25 degrees) and sprouts a side
    branch (radius x 0.65, 35-75 degrees away), until the radius falls below ``min_radius_mm``.
    A branch that would leave the organ tries a few other directions, then stops."""
    rng = scene.rng
    stack = [
        (np.asarray(p, float), np.asarray(d, float) / np.linalg.norm(d), r, 0.0, 1.0)
        for p, d, r in roots
    ]
    segments: list[Segment] = []
    while stack and len(segments) < max_segments:
        p, d0, r, lo, hi = stack.pop(0)
        for _ in range(4):
            axis = _cross(d0, rng.normal(size=3))
            axis /= max(float(np.linalg.norm(axis)), 1e-9)
            ang = np.radians(rng.uniform(lo, hi))
            d = d0 * np.cos(ang) + _cross(axis, d0) * np.sin(ang)
            length = float(np.clip(4.0 * r, 8.0, 22.0)) * rng.uniform(0.8, 1.2)
            q = p + d * length
            if inside(q) and inside((p + q) / 2):
                break
        else:
            continue
        r_end = 0.95 * r
        segments.append((p, q, r, r_end))
        for factor, lo, hi in ((0.92, 5.0, 25.0), (0.65, 35.0, 75.0)):
            child_r = r_end * factor * rng.uniform(0.9, 1.1)
            if child_r >= min_radius_mm:
                stack.append((q, d, child_r, lo, hi))
    return segments


def _kidney(scene: _Scene, side: int) -> np.ndarray:
    """One kidney (side -1 right, +1 left): cortex, medullary pyramids, sinus fat and pelvis,
    about 11 x 6 x 5 cm, upper pole tilted medially and posteriorly. Returns the hilum (mm)."""
    center = scene.at(side * 70, -37, -35 if side < 0 else -15, 4)
    radii = scene.size(31, 26, 56, sd=0.05)
    rot = _rotation(
        12 + scene.rng.normal(0, 4),
        -side * (15 + scene.rng.normal(0, 4)),
        -side * (30 + scene.rng.normal(0, 6)),
    )
    medial = np.array([-side * radii[0], 0.0, 0.0])
    hilum = center + rot @ medial
    box = _organ_box(scene, center, radii, 1.2)
    if box is None:
        return hilum
    xyz = scene.xyz(box)
    f = _ellipsoid_f(xyz, center, radii, rot)
    f += 0.05 * scene.noise(f.shape, 30.0)
    sinus = _ellipsoid_f(xyz, center + rot @ (0.5 * medial), radii * (0.55, 0.42, 0.55), rot)
    kidney = f < 0
    pyramids = (f < -0.25) & (scene.noise(f.shape, 12.0) > -0.3)
    scene.paint(box, kidney, "kidney_cortex")
    scene.paint(box, pyramids, "kidney_medulla")
    scene.paint(box, kidney & (sinus < 0), "renal_sinus_fat")
    scene.paint(box, kidney & (sinus < -0.55), "urine")
    return hilum


def _spleen(scene: _Scene) -> None:
    """Spleen: a flattened ellipsoid along the left posterolateral wall, concave hilum."""
    center, radii = scene.at(88, -36, 45, 4), scene.size(26, 52, 46, sd=0.05)
    rot = _rotation(scene.rng.normal(0, 8), scene.rng.normal(0, 8), -40 + scene.rng.normal(0, 6))
    box = _organ_box(scene, center, radii)
    if box is None:
        return
    xyz = scene.xyz(box)
    f = _ellipsoid_f(xyz, center, radii, rot)
    hilum = _ellipsoid_f(xyz, center + rot @ (-1.1 * radii[0], 0, 0), radii * (0.7, 0.5, 0.5), rot)
    f = np.maximum(f, -hilum) + 0.05 * scene.noise(f.shape, 30.0)
    scene.paint(box, f < 0, "spleen")


def _pancreas(scene: _Scene) -> np.ndarray:
    """Pancreas: a lobulated tube, head right of the midline in the duodenal loop, body across
    the aorta, tail up to the splenic hilum (about 15 cm long, 2-2.5 cm thick). Returns its path."""
    ref = np.array(
        [
            [-36, 10, -24, 15.0],
            [-15, 22, -6, 12.5],
            [20, 22, 2, 12.5],
            [55, 4, 16, 11.5],
            [78, -16, 30, 9.5],
        ]
    )
    jitter = np.column_stack([scene.rng.normal(0, 4, (5, 3)), scene.rng.normal(0, 0.8, 5)])
    path = _smooth_path((ref + jitter) * np.append(scene.g, 1.0))
    _tube(scene, "pancreas", path, wobble_mm=2.0, scale_mm=10.0)
    return path


def _stomach(scene: _Scene) -> None:
    """Stomach in the left upper quadrant: enhancing wall, fluid and an anterior gas cap."""
    center, radii = scene.at(48, 48, 55, 6), scene.size(42, 30, 40, sd=0.12)
    box = _organ_box(scene, center, radii)
    if box is None:
        return
    xyz = scene.xyz(box)
    f = _ellipsoid_f(xyz, center, radii, _rotation(0, 10, 30))
    f += 0.08 * scene.noise(f.shape, 40.0)
    level = center[1] + scene.rng.uniform(-5.0, 15.0)
    scene.paint(box, f < 0, "bowel_wall", onto=("visceral_fat",))
    scene.paint(box, (f < -0.12) & (xyz[1] < level), "bowel_fluid", onto=("bowel_wall",))
    scene.paint(box, (f < -0.12) & (xyz[1] >= level), "gas", onto=("bowel_wall",))


def _great_vessels(
    scene: _Scene, liver_hilum: np.ndarray, kidney_hila: Sequence[np.ndarray], pancreas: np.ndarray
) -> None:
    """Aorta, IVC, portal and splenic veins, renal veins (all labelled vessel)."""
    z0, z1 = float(scene.axes[2][0]) - 20, float(scene.axes[2][-1]) + 20
    zs = np.linspace(z0, z1, 6)
    aorta_x = 12 * scene.g[0] + scene.rng.normal(0, 3) + scene.rng.normal(0, 2, 6)
    aorta = np.column_stack(
        [aorta_x, np.full(6, -16 * scene.g[1]), zs, np.linspace(10, 12.5, 6) * scene.g[0]]
    )
    _tube(scene, "aorta", _smooth_path(aorta), wobble_mm=0.5)
    ivc_pts = [scene.at(-20, -16, zi, 2) for zi in np.linspace(z0, 85, 5)] + [scene.at(-15, -8, z1)]
    ivc = np.column_stack([np.array(ivc_pts), np.full(6, 11.0) * scene.g[0]])
    _tube(scene, "vein", _smooth_path(ivc), wobble_mm=1.0)
    confluence = pancreas[len(pancreas) // 3, :3] + (0, -14, 0)
    portal = np.array([[*confluence, 7.5], [*scene.at(-26, 2, 10, 2), 7.0], [*liver_hilum, 6.0]])
    _tube(scene, "portal_vein", _smooth_path(portal), wobble_mm=0.5)
    splenic = pancreas[len(pancreas) // 3 :].copy()
    splenic[:, 1] -= splenic[:, 3] * 0.9
    splenic[:, 3] = 4.5
    _tube(scene, "portal_vein", splenic, wobble_mm=0.5)
    ivc_at_renal = scene.at(-20, -16, -15)
    for side, hilum in zip((-1, 1), kidney_hila):
        mid = (ivc_at_renal + (35, 16, 0)) if side > 0 else (hilum + ivc_at_renal) / 2
        renal = np.array([[*hilum, 5.0], [*mid, 5.0], [*ivc_at_renal, 6.0]])
        _tube(scene, "vein", _smooth_path(renal, 2), wobble_mm=0.5)


def _bowel(scene: _Scene) -> None:
    """Colon frame (gas and stool) and small-bowel loops (fluid, some gas) in the free fat."""
    rng = scene.rng
    colon_ref = np.array(
        [
            [-105, 5, -130, 20],
            [-108, 5, -45, 20],
            [-90, 40, -20, 19],
            [-40, 65, -25, 17],
            [20, 68, -35, 17],
            [75, 55, -15, 17],
            [105, 20, 15, 16],
            [110, -5, -40, 15],
            [100, 0, -130, 15],
        ],
        float,
    )
    colon_ref[:, :3] += rng.normal(0, 5, (len(colon_ref), 3))
    colon = _smooth_path(colon_ref * np.append(scene.g, 1.0))
    box, sd = _tube(
        scene, "bowel_wall", colon, wobble_mm=2.5, scale_mm=20.0, onto=("visceral_fat",)
    )
    if box is not None:
        lumen = sd < -3.0
        scene.paint(box, lumen & (scene.noise(sd.shape, 15.0) > -0.3), "gas", ("bowel_wall",))
        scene.paint(box, lumen, "stool", ("bowel_wall",))
    g = scene.g
    box = scene.box(np.array([-120, -40, -140]) * g, np.array([120, 110, 20]) * g)
    if box is None:
        return
    x, y, z = scene.xyz(box)
    shape = (x.size, y.size, z.size)
    bias = 0.004 * (y - 20 * g[1]) - 0.006 * (z + 20)
    loops = np.maximum(np.abs(scene.noise(shape, 35.0)), np.abs(scene.noise(shape, 35.0)))
    loops -= np.clip(bias, 0.0, 0.3)
    scene.paint(box, loops < 0.32, "bowel_wall", onto=("visceral_fat",))
    scene.paint(box, loops < 0.22, "bowel_fluid", onto=("bowel_wall",))
    scene.paint(
        box, (loops < 0.22) & (scene.noise(shape, 12.0) > 1.6), "gas", onto=("bowel_fluid",)
    )


def _thorax(scene: _Scene, rho2d: np.ndarray) -> None:
    """Lung bases above the diaphragm domes (lowest at the periphery) and the heart's apex."""
    gz = scene.g[2]
    dome = ((95.0 - 48.0 * rho2d**2) * gz + scene.rng.normal(0, 4)).astype(np.float32)
    box = scene.box((-1e4, -1e4, float(dome.min())), (1e4, 1e4, 1e4))
    if box is None:
        return
    zz = scene.xyz(box)[2]
    scene.paint(
        box,
        zz > dome[box[0], box[1]][:, :, None],
        "lung",
        onto=("visceral_fat", "bowel_wall", "bowel_fluid", "stool", "gas"),
    )
    center, radii = scene.at(20, 25, 160, 5), scene.size(75, 60, 60)
    heart_box = _organ_box(scene, center, radii)
    if heart_box is not None:
        heart = _ellipsoid_f(scene.xyz(heart_box), center, radii) < 0
        scene.paint(heart_box, heart, "heart", onto=("visceral_fat", "lung"))


# --------------------------------------------------------------------------- image
def _liver_detail(
    scene: _Scene,
    image: np.ndarray,
    label: np.ndarray,
    box: Box,
    trees: Sequence[tuple[list[Segment], float]],
) -> None:
    """Mottled parenchyma and intrahepatic vessels with partial-volume edges. Vessels wider
    than 2 x ``_LABELLED_VESSEL_RADIUS_MM`` are labelled vessel; thinner ones stay liver."""
    liver = scene.tissue[box] == _T["liver"]
    sub = image[box]
    sub += np.where(liver, 4.0 * scene.noise(liver.shape, 12.0), 0.0).astype(np.float32)
    edge_mm = float(np.prod(scene.spacing)) ** (1 / 3)
    for segments, hu in trees:
        sd, radius = _capsules(scene, box, segments)
        weight = np.clip(0.5 - sd / edge_mm, 0.0, 1.0) * liver
        sub += weight * (np.float32(hu) - sub)
        label[box][(sd < 0) & (radius >= _LABELLED_VESSEL_RADIUS_MM) & liver] = _VESSEL_ID


def _ct_finish(
    image: np.ndarray,
    rng: np.random.Generator,
    noise_sd_hu: float,
    blur_vox: float = 0.6,
    noise_vox: float = 0.8,
) -> np.ndarray:
    """Partial-volume blur, spatially correlated noise of sd ``noise_sd_hu``, rounded to int16."""
    image = ndimage.gaussian_filter(image, blur_vox, mode="nearest")
    white = rng.standard_normal(image.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(white, noise_vox, mode="wrap")  # same sd up to the border
    image += noise * np.float32(noise_sd_hu / float(noise.std()))
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)
