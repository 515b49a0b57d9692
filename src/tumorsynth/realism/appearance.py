"""Appearance of a lesion against its host organ: the one place contrast, noise, heterogeneity,
rim/core and edge are measured, for real and synthetic tumors alike.

:func:`context_features` returns the ``ctx_`` (absolute HU of the tumor), ``rel_`` (relative to
the host shell) and ``host_`` (the shell alone) features of the realism study;
:func:`lesion_appearance` summarizes the same measurements for calibrating the heuristic generator
against the real tumors of 3D-IRCADb patient 1.17.

Definitions (all at the scan's own spacing, in a crop around the tumor):

- the *host shell*: organ voxels, not of any tumor, between ``shell_mm[0]`` and ``shell_mm[1]``
  outside the tumor (anisotropic Euclidean distance);
- the *interior*: tumor voxels deeper than 2 mm (so partial-volume edge voxels are left out);
- *fine-scale noise*: robust std (1.4826 x MAD) of the 2 mm high-pass residual, the low-pass
  being taken within the region alone (normalized convolution: ``G*(I m) / G*m``), so the step at
  the tumor edge does not leak into the noise of either side;
- *heterogeneity*: std of the 4 mm low-pass within the region (same normalized convolution);
- *edge*: a least-squares fit of an erf step ``inner + step * Phi((d - d0) / sigma)`` to the mean
  HU against signed distance ``d`` (mm, negative inside) from -6 to +6 mm, outside voxels taken in
  the host organ only: width = ``sigma`` (mm), sharpness = ``|step| / sigma`` (HU/mm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import edt
import numpy as np
from scipy import ndimage as ndi
from scipy.special import erf

from tumorsynth.box import Box
from tumorsynth.organs.context import robust_std

__all__ = [
    "CONTEXT_DESCRIPTIONS",
    "LesionAppearance",
    "context_features",
    "fit_edge",
    "host_shell",
    "lesion_appearance",
]

#: Interior = tumor voxels deeper than this (mm).
INTERIOR_DEPTH_MM = 2.0
#: Rim = tumor voxels within this depth (mm); core = deeper than 40% of the largest depth.
RIM_MM = 3.0
CORE_FRACTION = 0.4
#: Scales (mm, Gaussian sigma) of the noise high-pass and of the heterogeneity low-pass.
NOISE_SIGMA_MM = 2.0
HETEROGENEITY_SIGMA_MM = 4.0
#: The edge profile spans this signed distance (mm) on each side of the boundary.
EDGE_RANGE_MM = 6.0
#: Bounds the fitted edge sigma from below (mm): a label edge sharper than this is a step.
MIN_EDGE_SIGMA_MM = 0.1
#: Fewest voxels a statistic is taken over (fewer: NaN).
MIN_VOXELS = 20
#: 10-90% rise distance of an erf step, in units of its sigma (2 x 1.2816).
ERF_10_90 = 2.0 * 1.2815516

#: Words for each feature :func:`context_features` returns.
CONTEXT_DESCRIPTIONS: dict[str, str] = {
    "ctx_tumor_mean_hu": "mean HU of the tumor",
    "ctx_spread_hu": "interior spread: 90th - 10th percentile HU of the interior (> 2 mm deep)",
    "ctx_noise_in_hu": "fine-scale noise inside: robust std of the 2 mm high-pass residual (HU)",
    "ctx_heterogeneity_hu": "std of the 4 mm low-pass inside (HU): blotches, darker centres",
    "ctx_rim_hu": "mean HU of the outer 3 mm of the tumor",
    "ctx_core_hu": "mean HU deeper than 40% of the tumor's largest depth",
    "ctx_edge_step_hu": "step height of the erf fitted across the edge (host - tumor, HU)",
    "ctx_edge_width_mm": "sigma of the erf fitted across the edge (mm): larger is softer",
    "ctx_edge_sharpness": "|edge step| / edge width (HU/mm)",
    "rel_contrast_hu": "tumor mean - host shell mean (HU)",
    "rel_cnr": "|contrast| / fine-scale noise of the host shell",
    "rel_noise_ratio": "fine-scale noise inside / in the host shell",
    "rel_heterogeneity_ratio": "4 mm low-pass std inside / in the host shell",
    "rel_spread_ratio": "interior p90 - p10 / host shell p90 - p10",
    "rel_rim_core_drop": "(rim - core) / |contrast|: > 0 when the centre is darker than the rim",
    "rel_edge_cnr": "|edge step| / fine-scale noise of the host shell",
    "host_mean_hu": "mean HU of the host shell (organ 3-10 mm outside the tumor)",
    "host_noise_hu": "fine-scale noise of the host shell: robust std of the 2 mm high-pass (HU)",
    "host_heterogeneity_hu": "std of the 4 mm low-pass in the host shell (HU)",
    "host_spread_hu": "90th - 10th percentile HU of the host shell",
}


def context_features(
    image: np.ndarray,
    tumor: np.ndarray,
    host: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    shell_mm: tuple[float, float] = (3.0, 10.0),
    region: np.ndarray | None = None,
) -> dict[str, float]:
    """The ``ctx_``, ``rel_`` and ``host_`` features of one tumor (names in
    :data:`CONTEXT_DESCRIPTIONS`; NaN where a region holds fewer than 20 voxels).

    Parameters
    ----------
    image
        CT crop in HU (any real dtype).
    tumor
        Boolean mask of this tumor in the crop.
    host
        Boolean mask of the host organ's tissue in the crop: organ voxels that belong to no
        tumor (this one's voxels are ignored).
    spacing_mm
        Voxel size (mm) along each axis.
    shell_mm
        Inner and outer distance (mm) of the host shell from the tumor.
    region
        Optional boolean mask (a spherical patch): every statistic is taken on the voxels inside
        it only, while depths and distances still refer to the whole tumor.

    Examples
    --------
    >>> g = np.indices((48, 48, 48)) - 23.5
    >>> r = np.sqrt((g**2).sum(axis=0))
    >>> f = context_features(np.where(r < 10, 70.0, 100.0), r < 10, r < 22, (1.0, 1.0, 1.0))
    >>> round(f["rel_contrast_hu"], 3), round(f["host_mean_hu"], 3)
    (-30.0, 100.0)
    """
    spacing = tuple(float(s) for s in spacing_mm)
    img = np.asarray(image, dtype=np.float32)
    tumor = np.asarray(tumor, dtype=bool)
    host = np.asarray(host, dtype=bool) & ~tumor
    inside = edt.edt(tumor, anisotropy=spacing)
    outside = edt.edt(~tumor, anisotropy=spacing)
    shell = host_shell(outside, host, shell_mm)
    keep = np.ones_like(tumor) if region is None else np.asarray(region, dtype=bool)
    interior = tumor & (inside > INTERIOR_DEPTH_MM)
    depth_max = float(inside.max()) if tumor.any() else 0.0

    t_stats = _region_stats(img, tumor, interior & keep, spacing)
    h_stats = _region_stats(img, host, shell & keep, spacing)
    in_tumor = img[tumor & keep]
    tumor_mean = float(in_tumor.mean()) if in_tumor.size else math.nan
    rim = _mean(img, tumor & keep & (inside <= RIM_MM))
    core = _mean(img, tumor & keep & (inside > CORE_FRACTION * depth_max))
    # Voxel-centre distances start at one voxel on either side and the boundary lies between:
    # 0.4 voxel (not 0.5) recovers the sigma of erf-blurred spheres within 4-12% at 0.7, 1 and
    # 0.75 x 0.75 x 1.6 mm (0.5: 17% under at 1 mm; no shift: 30-60% over).
    half = 0.4 * min(spacing)
    signed = np.where(tumor, half - inside, outside - half)
    profile = (tumor | host) & keep
    sign = float(np.sign(h_stats["mean"] - tumor_mean)) if math.isfinite(tumor_mean) else 0.0
    width, step = fit_edge(
        img, signed, profile, min(spacing), sign=0.0 if math.isnan(sign) else sign
    )
    host_mean, host_noise = h_stats["mean"], h_stats["noise"]
    contrast = tumor_mean - host_mean
    return {
        "ctx_tumor_mean_hu": tumor_mean,
        "ctx_spread_hu": t_stats["spread"],
        "ctx_noise_in_hu": t_stats["noise"],
        "ctx_heterogeneity_hu": t_stats["heterogeneity"],
        "ctx_rim_hu": rim,
        "ctx_core_hu": core,
        "ctx_edge_step_hu": step,
        "ctx_edge_width_mm": width,
        "ctx_edge_sharpness": _divide(abs(step), width),
        "rel_contrast_hu": contrast,
        "rel_cnr": _divide(abs(contrast), host_noise),
        "rel_noise_ratio": _divide(t_stats["noise"], host_noise),
        "rel_heterogeneity_ratio": _divide(t_stats["heterogeneity"], h_stats["heterogeneity"]),
        "rel_spread_ratio": _divide(t_stats["spread"], h_stats["spread"]),
        "rel_rim_core_drop": _divide(rim - core, abs(contrast)),
        "rel_edge_cnr": _divide(abs(step), host_noise),
        "host_mean_hu": host_mean,
        "host_noise_hu": host_noise,
        "host_heterogeneity_hu": h_stats["heterogeneity"],
        "host_spread_hu": h_stats["spread"],
    }


def host_shell(
    outside_mm: np.ndarray, host: np.ndarray, shell_mm: tuple[float, float]
) -> np.ndarray:
    """Host voxels whose distance from the tumor (``outside_mm``, mm) is in ``(lo, hi]``."""
    return host & (outside_mm > shell_mm[0]) & (outside_mm <= shell_mm[1])


def _divide(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return math.nan
    return float(a / b)


def _mean(img: np.ndarray, where: np.ndarray) -> float:
    values = img[where]
    return float(values.mean()) if values.size else math.nan


def _smooth_within(img: np.ndarray, mask: np.ndarray, sigma_mm: float, spacing: tuple[float, ...]):
    """Gaussian low-pass of ``img`` taken over ``mask`` only (normalized convolution)."""
    sigma = [sigma_mm / s for s in spacing]
    weight = mask.astype(np.float32)
    num = ndi.gaussian_filter(img * weight, sigma)
    den = ndi.gaussian_filter(weight, sigma)
    return num / np.maximum(den, 1e-6)


def _region_stats(
    img: np.ndarray, support: np.ndarray, where: np.ndarray, spacing: tuple[float, ...]
) -> dict[str, float]:
    """Mean, p90 - p10 spread, fine-scale noise and heterogeneity of ``img`` on ``where``;
    the filters see only ``support`` (the tumor, or the host tissue)."""
    nan = {"mean": math.nan, "spread": math.nan, "noise": math.nan, "heterogeneity": math.nan}
    if int(where.sum()) < MIN_VOXELS:
        return nan
    values = img[where]
    lo, hi = np.percentile(values, [10, 90])
    residual = img[where] - _smooth_within(img, support, NOISE_SIGMA_MM, spacing)[where]
    low = _smooth_within(img, support, HETEROGENEITY_SIGMA_MM, spacing)[where]
    return {
        "mean": float(values.mean()),
        "spread": float(hi - lo),
        "noise": robust_std(residual),
        "heterogeneity": float(low.std()),
    }


def fit_edge(
    image: np.ndarray,
    signed_mm: np.ndarray,
    where: np.ndarray,
    step_mm: float,
    *,
    sign: float = 0.0,
    range_mm: float = EDGE_RANGE_MM,
) -> tuple[float, float]:
    """Width (erf sigma, mm) and step (outer - inner, HU) of the edge, from a least-squares fit
    of an erf step to the mean HU in signed-distance bins of ``where`` (bins of at least
    0.5 mm or ``step_mm``, from ``-range_mm`` to ``+range_mm``, weighted by their voxel counts;
    the centre may move 3 mm). ``sign`` > 0 (< 0) keeps the step positive (negative): the
    direction of the tumor's contrast, so a tumor with a bright band inside a dark rim is fitted
    at its edge, not at the band. NaN, NaN when fewer than 3 bins on either side hold 10 voxels,
    or when the fit fails.
    """
    from scipy.optimize import curve_fit  # scipy.optimize costs 0.1 s to import; used here only

    nan = (math.nan, math.nan)
    width = max(float(step_mm), 0.5)
    d = signed_mm[where]
    near = np.abs(d) <= range_mm
    d, values = d[near], np.asarray(image, dtype=np.float64)[where][near]
    if d.size == 0:
        return nan
    bins = np.floor((d + range_mm) / width).astype(np.int64)
    counts = np.bincount(bins)
    sums = np.bincount(bins, weights=values)
    full = counts >= 10
    centres = (np.arange(counts.size) + 0.5) * width - range_mm
    x, n = centres[full], counts[full]
    y = sums[full] / n
    if (x < 0).sum() < 3 or (x > 0).sum() < 3:
        return nan

    def model(x: np.ndarray, inner: float, step: float, d0: float, sigma: float) -> np.ndarray:
        return inner + step * 0.5 * (1.0 + erf((x - d0) / (math.sqrt(2.0) * sigma)))

    inner0 = float(y[x < -2].mean()) if (x < -2).any() else float(y[0])
    outer0 = float(y[x > 2].mean()) if (x > 2).any() else float(y[-1])
    step_lo, step_hi = -np.inf, np.inf
    if sign > 0:
        step_lo = 0.0
    elif sign < 0:
        step_hi = 0.0
    step0 = float(np.clip(outer0 - inner0, step_lo + 1e-3, step_hi - 1e-3))
    try:
        params, _ = curve_fit(
            model,
            x,
            y,
            p0=(inner0, step0, 0.0, 1.0),
            sigma=1.0 / np.sqrt(n),
            bounds=([-np.inf, step_lo, -3.0, MIN_EDGE_SIGMA_MM], [np.inf, step_hi, 3.0, 15.0]),
            maxfev=2000,
        )
    except (RuntimeError, ValueError):
        return nan
    return float(params[3]), float(params[1])


@dataclass(frozen=True)
class LesionAppearance:
    """Appearance of one lesion (HU, mm), a summary of :func:`context_features`.

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
        Std of the 4 mm low-pass (within the lesion) deeper than 2 mm inside the lesion.
    edge_width_mm
        10-90% rise distance of the erf fitted across the edge (2.563 x its sigma).
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
    les = lesion[box]
    f = context_features(image[box], les, organ[box] & ~les, spacing_mm)
    return LesionAppearance(
        tumor_mean_hu=f["ctx_tumor_mean_hu"],
        parenchyma_mean_hu=f["host_mean_hu"],
        contrast_hu=f["rel_contrast_hu"],
        cnr=f["rel_cnr"],
        rim_hu=f["ctx_rim_hu"],
        core_hu=f["ctx_core_hu"],
        heterogeneity_hu=f["ctx_heterogeneity_hu"],
        edge_width_mm=ERF_10_90 * f["ctx_edge_width_mm"],
        volume_ml=float(lesion.sum()) * float(np.prod(spacing_mm)) / 1000.0,
    )
