"""Appearance statistics of a lesion, for real and synthetic tumors alike.

Used to calibrate the heuristic generator against the real tumors we have (3D-IRCADb patient 1.17)
and to check that synthetic tumors land in the same range: contrast to the surrounding organ,
contrast-to-noise ratio, interior heterogeneity, rim-to-core drop and edge width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import edt
import numpy as np
from scipy import ndimage as ndi

from tumorsynth.box import Box
from tumorsynth.organs.context import robust_std

__all__ = ["LesionAppearance", "lesion_appearance"]


@dataclass(frozen=True)
class LesionAppearance:
    """Appearance of one lesion (HU, mm).

    Attributes
    ----------
    tumor_mean_hu
        Mean HU of the lesion.
    parenchyma_mean_hu
        Mean HU of the organ in a 3-10 mm shell around the lesion.
    contrast_hu
        ``tumor_mean_hu - parenchyma_mean_hu``.
    cnr
        ``|contrast| / noise``, noise = robust std of the 2 mm high-pass residual in the shell.
    rim_hu, core_hu
        Mean HU 0-3 mm inside the edge and deeper than 40% of the maximum depth.
    heterogeneity_hu
        Std of the 4 mm low-passed image deeper than 2 mm inside the lesion.
    edge_width_mm
        Distance over which the mean profile across the edge rises from 10% to 90%.
    volume_ml
        Lesion volume.
    """

    tumor_mean_hu: float
    parenchyma_mean_hu: float
    contrast_hu: float
    cnr: float
    rim_hu: float
    core_hu: float
    heterogeneity_hu: float
    edge_width_mm: float
    volume_ml: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 2) for k, v in asdict(self).items()}


def lesion_appearance(
    image: np.ndarray,
    lesion: np.ndarray,
    organ: np.ndarray,
    spacing_mm: tuple[float, float, float],
    margin_mm: float = 15.0,
) -> LesionAppearance:
    """Measure one lesion (bool mask) in ``image`` (HU) inside ``organ`` (bool mask).

    Works in the lesion's bounding box plus ``margin_mm``; the lesion must be non-empty.
    """
    found = Box.of_mask(lesion, margin=[int(np.ceil(margin_mm / s)) for s in spacing_mm])
    if found is None:
        raise ValueError("lesion mask is empty")
    box = found.slices
    img = image[box].astype(np.float32)
    les = lesion[box]
    org = organ[box] | les
    inside = edt.edt(les, anisotropy=spacing_mm)
    outside = edt.edt(~les, anisotropy=spacing_mm)
    signed = np.where(les, -inside, outside)
    shell = (outside > 3) & (outside <= 10) & org & ~les
    resid = img - ndi.gaussian_filter(img, sigma=[2.0 / s for s in spacing_mm])
    noise = robust_std(resid[shell]) if shell.any() else np.nan
    tumor_mean = float(img[les].mean())
    paren = float(img[shell].mean()) if shell.any() else np.nan
    depth_max = float(inside.max())
    rim = les & (inside <= 3)
    core = les & (inside > 0.4 * depth_max)
    low = ndi.gaussian_filter(img, sigma=[4.0 / s for s in spacing_mm])
    deep = les & (inside > 2)
    return LesionAppearance(
        tumor_mean_hu=tumor_mean,
        parenchyma_mean_hu=paren,
        contrast_hu=tumor_mean - paren,
        cnr=abs(tumor_mean - paren) / noise if noise and noise > 0 else np.nan,
        rim_hu=float(img[rim].mean()),
        core_hu=float(img[core].mean()) if core.any() else np.nan,
        heterogeneity_hu=float(low[deep].std()) if deep.any() else np.nan,
        edge_width_mm=_edge_width(img, signed, org, min(spacing_mm)),
        volume_ml=float(lesion.sum()) * float(np.prod(spacing_mm)) / 1000.0,
    )


def _edge_width(img: np.ndarray, signed: np.ndarray, organ: np.ndarray, step: float) -> float:
    """10-90% rise distance of the mean HU profile across the lesion edge (within the organ)."""
    step = max(step, 0.25)
    edges = np.arange(-6.0, 6.0 + step, step)
    centres, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = organ & (signed > lo) & (signed <= hi)
        if sel.sum() > 10:
            centres.append(0.5 * (lo + hi))
            means.append(float(img[sel].mean()))
    if len(means) < 6:
        return float("nan")
    c, m = np.array(centres), np.array(means)
    inner = m[(c > -4) & (c < -1.5)].mean()
    outer = m[(c > 2.5) & (c < 6)].mean()
    if abs(outer - inner) < 1e-3:
        return float("nan")
    frac = (m - inner) / (outer - inner)

    # Profile is monotonic on average; take the first crossings from the inside out.
    def crossing(level: float) -> float:
        above = np.nonzero(frac >= level)[0]
        above = above[c[above] > -4]
        if not len(above):
            return float("nan")
        i = int(above[0])
        if i == 0:
            return float(c[0])
        return float(np.interp(level, [frac[i - 1], frac[i]], [c[i - 1], c[i]]))

    return crossing(0.9) - crossing(0.1)
