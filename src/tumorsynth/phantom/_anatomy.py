"""The phantom's anatomy: each structure painted into the scene's tissue map, in world mm.

:func:`paint_abdomen` paints them in a fixed order (one random stream, so the order is part of
the seed's meaning): body wall, spine and paraspinal muscles, lower ribs, liver with gallbladder
and its vessel trees, kidneys, spleen, pancreas, stomach, great vessels, bowel (the colon frame
and small-bowel loops), lung bases and heart. The organs added later (the colon's lumen, the
esophagus in ``_hollow``, the uterus in ``_pelvis``) draw from a second stream and are painted
only over fat, bowel, lung and heart, so the older structures keep their seed's meaning and the
older labels stay exactly as they were. Positions and radii are a reference anatomy (mm, scene
axes: ``-x`` toward the patient's right, ``+y`` anterior, ``+z`` superior) scaled to the patient
and jittered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tumorsynth.phantom._hollow import COLON_WALL_MM, fill_colon, paint_esophagus
from tumorsynth.phantom._pelvis import paint_uterus
from tumorsynth.phantom._scene import (
    TISSUE_ID,
    TISSUE_PRIORITY,
    Box,
    Scene,
    Segment,
    VesselTree,
    ellipsoid_f,
    organ_box,
    rotation,
    smooth_min,
    smooth_path,
    tube,
)

__all__ = ["paint_abdomen"]

#: The labelled colon's tissues, which the lung bases cover as they covered the unlabelled one.
_COLON_TISSUES = ("colon_wall", "colon_gas", "colon_fluid")


def paint_abdomen(scene: Scene, organs: Scene | None = None) -> tuple[Box | None, list[VesselTree]]:
    """Paint every structure into ``scene.tissue``; returns the liver's box (None when the FOV
    misses it) and its vessel trees, which are drawn into the image rather than the tissue map.

    ``organs`` (the same scene forked onto the added organs' random stream) adds the labelled
    colon, esophagus and uterus; None paints the phantom as it was before them, with the colon
    frame as unlabelled bowel. Either way ``scene.rng`` is drawn from identically, so every other
    structure is the same voxel for voxel.
    """
    depth2d, rho2d, fat2d = _body(scene)
    _back(scene)
    _ribs(scene, depth2d, fat2d)
    liver_box, trees, hilum = _liver(scene)
    kidney_hila = [_kidney(scene, side) for side in (-1, 1)]
    _spleen(scene)
    pancreas_path = _pancreas(scene)
    stomach = _stomach(scene)
    aorta, ivc = _great_vessels(scene, hilum, kidney_hila, pancreas_path)
    added = None if organs is None else [organs.fork(r) for r in organs.rng.spawn(3)]
    _bowel(scene, None if added is None else added[0])
    _thorax(scene, rho2d)
    if added is not None:  # each added organ has its own stream: changing one leaves the others
        paint_esophagus(added[1], stomach, aorta, ivc)
        paint_uterus(added[2])
    return liver_box, trees


def _body(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    t[...] = TISSUE_ID["visceral_fat"]
    t[depth < wall] = TISSUE_ID["muscle"]
    t[depth < fat2d[:, :, None]] = TISSUE_ID["subcutaneous_fat"]
    t[depth < 1.5] = TISSUE_ID["skin"]
    t[depth < 0] = TISSUE_ID["air"]
    return depth2d, rho, fat2d


def _back(scene: Scene) -> None:
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


def _ribs(scene: Scene, depth2d: np.ndarray, fat2d: np.ndarray) -> None:
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
            ok = TISSUE_PRIORITY[current] <= TISSUE_PRIORITY[TISSUE_ID["cortical_bone"]]
            scene.tissue[sel] = np.where(
                ok,
                np.where(cortex, TISSUE_ID["cortical_bone"], TISSUE_ID["cancellous_bone"]),
                current,
            )


def _liver(scene: Scene) -> tuple[Box | None, list[VesselTree], np.ndarray]:
    """Liver (right lobe, left lobe and caudate, smoothly joined) and gallbladder. Returns the
    liver's box, its vessel trees (segments, HU; rendered later) and the hilum (mm)."""
    g = scene.g
    lobes = [
        (
            scene.at(-62, 4, 24, 4),
            scene.size(70, 85, 76, sd=0.04),
            rotation(*scene.rng.normal((0, 20, 0), 5)),
            0.3,
        ),
        (scene.at(-5, 42, 56, 4), scene.size(64, 34, 36, sd=0.04), rotation(0, -15, 10), 0.0),
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
    f = np.maximum(ellipsoid_f(xyz, *lobes[0]), underside)
    for center, radii, rot, taper in lobes[1:]:
        f = smooth_min(f, ellipsoid_f(xyz, center, radii, rot, taper), 0.15)
    f += 0.06 * scene.noise(f.shape, 60.0) + 0.025 * scene.noise(f.shape, 20.0)
    scene.paint(box, f < 0, "liver")

    gb_center, gb_radii = scene.at(-35, 42, -8, 4), scene.size(15, 16, 34, sd=0.1)
    gb_box = organ_box(scene, gb_center, gb_radii)
    if gb_box is not None:
        gb = ellipsoid_f(scene.xyz(gb_box), gb_center, gb_radii, rotation(-35, 20, 0))
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


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow for single vectors)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _vessel_tree(
    scene: Scene,
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


def _kidney(scene: Scene, side: int) -> np.ndarray:
    """One kidney (side -1 right, +1 left): cortex, medullary pyramids, sinus fat and pelvis,
    about 11 x 6 x 5 cm, upper pole tilted medially and posteriorly. Returns the hilum (mm)."""
    center = scene.at(side * 70, -37, -35 if side < 0 else -15, 4)
    radii = scene.size(31, 26, 56, sd=0.05)
    rot = rotation(
        12 + scene.rng.normal(0, 4),
        -side * (15 + scene.rng.normal(0, 4)),
        -side * (30 + scene.rng.normal(0, 6)),
    )
    medial = np.array([-side * radii[0], 0.0, 0.0])
    hilum = center + rot @ medial
    box = organ_box(scene, center, radii, 1.2)
    if box is None:
        return hilum
    xyz = scene.xyz(box)
    f = ellipsoid_f(xyz, center, radii, rot)
    f += 0.05 * scene.noise(f.shape, 30.0)
    sinus = ellipsoid_f(xyz, center + rot @ (0.5 * medial), radii * (0.55, 0.42, 0.55), rot)
    kidney = f < 0
    pyramids = (f < -0.25) & (scene.noise(f.shape, 12.0) > -0.3)
    scene.paint(box, kidney, "kidney_cortex")
    scene.paint(box, pyramids, "kidney_medulla")
    scene.paint(box, kidney & (sinus < 0), "renal_sinus_fat")
    scene.paint(box, kidney & (sinus < -0.55), "urine")
    return hilum


def _spleen(scene: Scene) -> None:
    """Spleen: a flattened ellipsoid along the left posterolateral wall, concave hilum."""
    center, radii = scene.at(88, -36, 45, 4), scene.size(26, 52, 46, sd=0.05)
    rot = rotation(scene.rng.normal(0, 8), scene.rng.normal(0, 8), -40 + scene.rng.normal(0, 6))
    box = organ_box(scene, center, radii)
    if box is None:
        return
    xyz = scene.xyz(box)
    f = ellipsoid_f(xyz, center, radii, rot)
    hilum = ellipsoid_f(xyz, center + rot @ (-1.1 * radii[0], 0, 0), radii * (0.7, 0.5, 0.5), rot)
    f = np.maximum(f, -hilum) + 0.05 * scene.noise(f.shape, 30.0)
    scene.paint(box, f < 0, "spleen")


def _pancreas(scene: Scene) -> np.ndarray:
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
    path = smooth_path((ref + jitter) * np.append(scene.g, 1.0))
    tube(scene, "pancreas", path, wobble_mm=2.0, scale_mm=10.0)
    return path


def _stomach(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stomach in the left upper quadrant: enhancing wall, fluid and an anterior gas cap.
    Returns its centre, radii (mm) and rotation, where the esophagus aims."""
    center, radii = scene.at(48, 48, 55, 6), scene.size(42, 30, 40, sd=0.12)
    rot = rotation(0, 10, 30)
    box = organ_box(scene, center, radii)
    if box is None:
        return center, radii, rot
    xyz = scene.xyz(box)
    f = ellipsoid_f(xyz, center, radii, rot)
    f += 0.08 * scene.noise(f.shape, 40.0)
    level = center[1] + scene.rng.uniform(-5.0, 15.0)
    scene.paint(box, f < 0, "bowel_wall", onto=("visceral_fat",))
    scene.paint(box, (f < -0.12) & (xyz[1] < level), "bowel_fluid", onto=("bowel_wall",))
    scene.paint(box, (f < -0.12) & (xyz[1] >= level), "gas", onto=("bowel_wall",))
    return center, radii, rot


def _great_vessels(
    scene: Scene, liver_hilum: np.ndarray, kidney_hila: Sequence[np.ndarray], pancreas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Aorta, IVC, portal and splenic veins, renal veins (all labelled vessel). Returns the
    aorta's and the IVC's paths (rows x, y, z, radius in mm), which the esophagus lies between."""
    z0, z1 = float(scene.axes[2][0]) - 20, float(scene.axes[2][-1]) + 20
    zs = np.linspace(z0, z1, 6)
    aorta_x = 12 * scene.g[0] + scene.rng.normal(0, 3) + scene.rng.normal(0, 2, 6)
    aorta = np.column_stack(
        [aorta_x, np.full(6, -16 * scene.g[1]), zs, np.linspace(10, 12.5, 6) * scene.g[0]]
    )
    aorta = smooth_path(aorta)
    tube(scene, "aorta", aorta, wobble_mm=0.5)
    ivc_pts = [scene.at(-20, -16, zi, 2) for zi in np.linspace(z0, 85, 5)] + [scene.at(-15, -8, z1)]
    ivc = smooth_path(np.column_stack([np.array(ivc_pts), np.full(6, 11.0) * scene.g[0]]))
    tube(scene, "vein", ivc, wobble_mm=1.0)
    confluence = pancreas[len(pancreas) // 3, :3] + (0, -14, 0)
    portal = np.array([[*confluence, 7.5], [*scene.at(-26, 2, 10, 2), 7.0], [*liver_hilum, 6.0]])
    tube(scene, "portal_vein", smooth_path(portal), wobble_mm=0.5)
    splenic = pancreas[len(pancreas) // 3 :].copy()
    splenic[:, 1] -= splenic[:, 3] * 0.9
    splenic[:, 3] = 4.5
    tube(scene, "portal_vein", splenic, wobble_mm=0.5)
    ivc_at_renal = scene.at(-20, -16, -15)
    for side, hilum in zip((-1, 1), kidney_hila):
        mid = (ivc_at_renal + (35, 16, 0)) if side > 0 else (hilum + ivc_at_renal) / 2
        renal = np.array([[*hilum, 5.0], [*mid, 5.0], [*ivc_at_renal, 6.0]])
        tube(scene, "vein", smooth_path(renal, 2), wobble_mm=0.5)
    return aorta, ivc


def _bowel(scene: Scene, organs: Scene | None) -> None:
    """Colon frame and small-bowel loops (fluid, some gas) in the free fat.

    With ``organs`` the colon is labelled (wall, air and dependent fluid, the lumen drawn from
    ``organs.rng``); without, it is the former unlabelled frame of gas and stool.
    """
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
    colon = smooth_path(colon_ref * np.append(scene.g, 1.0))
    wall = "bowel_wall" if organs is None else "colon_wall"
    box, sd = tube(scene, wall, colon, wobble_mm=2.5, scale_mm=20.0, onto=("visceral_fat",))
    if box is not None:
        gas_pattern = scene.noise(sd.shape, 15.0)  # drawn either way: the stream stays the same
        if organs is None:
            lumen = sd < -COLON_WALL_MM
            scene.paint(box, lumen & (gas_pattern > -0.3), "gas", ("bowel_wall",))
            scene.paint(box, lumen, "stool", ("bowel_wall",))
        else:
            fill_colon(organs, box, sd, colon)
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


def _thorax(scene: Scene, rho2d: np.ndarray) -> None:
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
        onto=("visceral_fat", "bowel_wall", "bowel_fluid", "stool", "gas", *_COLON_TISSUES),
    )
    center, radii = scene.at(20, 25, 160, 5), scene.size(75, 60, 60)
    heart_box = organ_box(scene, center, radii)
    if heart_box is not None:
        heart = ellipsoid_f(scene.xyz(heart_box), center, radii) < 0
        scene.paint(heart_box, heart, "heart", onto=("visceral_fat", "lung"))
