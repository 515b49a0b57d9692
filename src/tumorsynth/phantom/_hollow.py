"""The phantom's labelled hollow organs: the colon's lumen and the esophagus.

Both are tubes whose label holds the wall and the lumen, as TotalSegmentator's masks do. The colon
frame (its course, radius, wobble and 3 mm wall) is painted by ``_anatomy._bowel`` from the first
random stream, exactly where the unlabelled colon used to be; :func:`fill_colon` fills its lumen
with air and, in a few places, a pool of fluid (the patient lies supine, so fluid lies posterior,
at lower ``y``, under a horizontal level).
:func:`paint_esophagus` draws the distal esophagus: a collapsed muscular tube (8-10 mm outer
radius, a little air in its lumen in places) coming down from the top of the FOV anterior to the
aorta, veering left through the hiatus to the stomach's cardia. Both draw from the added organs'
stream (a scene forked with its own generator), so the older structures stay as they were.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from tumorsynth.phantom._scene import TISSUE_ID, Box, Scene, capsules, smooth_path

__all__ = ["COLON_WALL_MM", "fill_colon", "paint_esophagus"]

#: Colon wall thickness (mm): the lumen is the tube deeper than this below its outer surface.
COLON_WALL_MM = 3.0
#: Tissues the esophagus may be painted over: the fat, lung and heart around it and the stomach's
#: wall at the cardia (never the stomach's lumen, a solid organ, a vessel, bone or muscle).
_ESOPHAGUS_ONTO = ("visceral_fat", "lung", "heart", "bowel_wall")
#: Thickness (mm) of the fat plane between the esophagus and the heart.
_FAT_PLANE_MM = 2.5
#: Radius (mm) of the esophageal lumen where it holds air; elsewhere it is collapsed (wall).
_ESOPHAGUS_LUMEN_MM = 3.0


def fill_colon(organs: Scene, box: Box, sd: np.ndarray, path: np.ndarray) -> None:
    """Fill the colon's lumen with air and, in a few places, a dependent pool of fluid.

    ``sd`` is the colon tube's signed distance (mm) on ``box`` and ``path`` its centre line (rows
    x, y, z, radius in mm). The lumen is the tube deeper than ``COLON_WALL_MM`` where the colon
    wall was painted, and at least a voxel inside it where another organ cut the tube. Each lumen
    voxel belongs to its nearest centre-line point; a pool's level over that cross-section is its
    lowest lumen point (within about 6 mm along the colon) plus a fraction (0.25-0.55) of the
    lumen's diameter, tapering to nothing over the pool's ends.
    """
    colon = organs.tissue[box] == TISSUE_ID["colon_wall"]
    lumen = (sd < -COLON_WALL_MM) & ndimage.binary_erosion(colon, border_value=1)
    if not lumen.any():
        return
    step_mm = 2.0
    centre = _resample(path, step_mm)
    i, j, k = np.nonzero(lumen)
    x, y, z = (axis[sl][idx] for axis, sl, idx in zip(organs.axes, box, (i, j, k)))
    _, nearest = cKDTree(centre[:, :3]).query(np.column_stack([x, y, z]))
    bottom = np.full(len(centre), np.inf)
    np.minimum.at(bottom, nearest, y)
    bottom = ndimage.minimum_filter1d(bottom, size=7, mode="nearest")
    arc_mm = np.arange(len(centre)) * step_mm
    fraction = np.zeros(len(centre))
    for _ in range(int(organs.rng.integers(3, 6))):
        middle, half = organs.rng.uniform(0.0, arc_mm[-1]), organs.rng.uniform(20.0, 60.0)
        reach = np.clip(2.0 * (1.0 - np.abs(arc_mm - middle) / half), 0.0, 1.0)
        fraction = np.maximum(fraction, organs.rng.uniform(0.25, 0.55) * reach)
    diameter = 2.0 * np.maximum(centre[:, 3] - COLON_WALL_MM, 1.0)
    level = bottom + fraction * diameter
    fluid = np.zeros_like(lumen)
    fluid[i, j, k] = y < level[nearest]
    organs.paint(box, lumen & ~fluid, "colon_gas", onto=("colon_wall",))
    organs.paint(box, fluid, "colon_fluid", onto=("colon_wall",))


def paint_esophagus(
    organs: Scene,
    stomach: tuple[np.ndarray, np.ndarray, np.ndarray],
    aorta: np.ndarray,
    ivc: np.ndarray,
) -> None:
    """The distal esophagus from above the FOV to the stomach's cardia.

    In the lower chest it lies in front of the spine, in the notch between the aorta (on its
    left), the IVC (on its right) and the heart (in front, behind a thin fat plane, the only
    older structure it changes beyond its own voxels), touching each; it then veers left and
    forward through the hiatus and ends a little inside the stomach's posteromedial upper surface
    (``stomach``: centre, radii in mm and rotation), so its wall merges with the stomach's.
    ``aorta`` and ``ivc`` are the vessels' paths (rows x, y, z, radius in mm).
    """
    g = organs.g
    radius = 8.5 * float(organs.rng.normal(1.0, 0.05))
    center, radii, rot = stomach
    toward = np.array([-0.5, -0.55, 0.67])  # medial, posterior, superior (scene axes)
    reach = 1.0 / float(np.linalg.norm((rot.T @ toward) / radii))
    cardia = center + 0.85 * reach * toward / float(np.linalg.norm(toward))
    knots = [
        [*_between(aorta, ivc, z, radius + 2.0), z, radius]
        for z in (max(float(organs.axes[2][-1]) + 30.0, 125.0 * g[2]), 104.0 * g[2])
    ]
    hiatus = np.array([14.0 * g[0], 10.0 * g[1], 90.0 * g[2]]) + organs.rng.normal(0.0, 2.0, 3)
    knots += [[*hiatus, 1.05 * radius], [*cardia, 1.15 * radius]]
    path = smooth_path(np.array(knots), 3)
    pad = float(path[:, 3].max()) + 4.0 * max(organs.spacing)
    box = organs.box(path[:, :3].min(0) - pad, path[:, :3].max(0) + pad)
    if box is None:
        return
    segments = [(a[:3], b[:3], float(a[3]), float(b[3])) for a, b in pairwise(path)]
    sd, tube_radius = capsules(organs, box, segments)
    outer = sd + np.float32(0.8) * organs.noise(sd.shape, 20.0)
    free = np.isin(organs.tissue[box], [TISSUE_ID[name] for name in _ESOPHAGUS_ONTO])
    organs.paint(box, _largest_component((outer < 0) & free), "esophagus_wall")
    wall_id = TISSUE_ID["esophagus_wall"]
    # where it runs along the heart (or through the phantom's blob of one), a fat plane between
    organs.paint(box, outer < _FAT_PLANE_MM, "visceral_fat", onto=("heart",))
    lumen = (sd + tube_radius < _ESOPHAGUS_LUMEN_MM) & (organs.tissue[box] == wall_id)
    if lumen.any():  # air in about half of it (in the FOV), collapsed elsewhere
        pattern = organs.noise(sd.shape, 30.0)
        airy = pattern > np.median(pattern[lumen])
        organs.paint(box, lumen & airy, "esophagus_gas", onto=("esophagus_wall",))


def _between(aorta: np.ndarray, ivc: np.ndarray, z: float, gap_mm: float) -> tuple[float, float]:
    """The (x, y) point (mm) at height ``z`` that is ``gap_mm`` clear of both the aorta's and the
    IVC's surfaces, on the anterior side (the front intersection of two circles in the axial
    plane); halfway between them when they are too far apart to touch both."""
    a, ra = _level(aorta, z)
    b, rb = _level(ivc, z)
    da, db = ra + gap_mm, rb + gap_mm
    d = float(np.linalg.norm(b - a))
    u = (b - a) / max(d, 1e-6)
    along = (da**2 - db**2 + d**2) / (2.0 * max(d, 1e-6))
    off = np.sqrt(max(da**2 - along**2, 0.0))
    front = np.array([-u[1], u[0]])
    p = a + along * u + off * np.copysign(1.0, front[1]) * front  # the anterior (+y) side
    return float(p[0]), float(p[1])


def _level(path: np.ndarray, z: float) -> tuple[np.ndarray, float]:
    """Centre (x, y) and radius (mm) of a path rising along z, at height ``z``."""
    x, y, r = (float(np.interp(z, path[:, 2], path[:, c])) for c in (0, 1, 3))
    return np.array([x, y]), r


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (crumbs cut off by other organs go)."""
    components, n = ndimage.label(mask)
    if n <= 1:
        return mask
    return components == 1 + int(np.argmax(np.bincount(components.ravel())[1:]))


def _resample(path: np.ndarray, step_mm: float) -> np.ndarray:
    """The polyline ``path`` (rows x, y, z, radius) resampled every ``step_mm`` of arc length."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path[:, :3], axis=0), axis=1))])
    s = np.arange(0.0, arc[-1] + step_mm / 2, step_mm)
    return np.column_stack([np.interp(s, arc, path[:, c]) for c in range(4)])
