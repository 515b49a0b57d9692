"""Radiomics of a tumor, its host shell and the tumor normalized by its host, through pyradiomics.

pyradiomics (the ``pyradiomics-bhklab`` package, imported as ``radiomics``; install with
``pip install "tumorsynth[realism]"``) is an optional dependency, imported on first use.

Radiomics depend on the voxel size: texture matrices count neighbours one voxel apart, and shape
features are measured on the voxel mesh. So every crop is resampled to one stated common spacing
(:attr:`~tumorsynth.realism.features.FeatureSettings.spacing_mm`, 1 mm isotropic by default; the
image with a B-spline, masks as linearly interpolated fractions thresholded at 0.5) before any
feature is computed, and grey levels are binned with a fixed width (25 HU by default), the same for
every tumor, so values compare across scans.

Feature names (``original_<class>_<Name>`` in pyradiomics) become:

- ``tumor_<class>_<Name>``: the tumor in HU (firstorder, glcm, glrlm, glszm, ngtdm, gldm);
- ``host_<class>_<Name>``: the same on the host shell;
- ``norm_<class>_<Name>``: the tumor after ``(HU - host mean) / host noise``, clipped to
  +-:data:`NORM_CLIP`, binned in those units (``norm_bin_width``);
- ``shape_rad_<Name>`` for the scale-free shape features (Sphericity, Elongation, Flatness) and
  ``size_rad_<Name>`` for the others (MeshVolume, SurfaceArea, Maximum3DDiameter...);
- texture features that grow with the number of voxels (Energy, TotalEnergy, the
  non-normalized non-uniformities, NGTDM Coarseness, Busyness and Strength) are size features:
  ``size_tumor_<class>_<Name>`` (and ``size_host_``, ``size_norm_``), so "appearance only"
  feature sets do not see the tumor's size through them.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tumorsynth.errors import InputError

__all__ = [
    "NORM_CLIP",
    "RADIOMICS_CLASSES",
    "SCALE_FREE_SHAPE",
    "VOLUME_DEPENDENT",
    "load_radiomics",
    "radiomics_features",
    "resample",
]

#: pyradiomics feature classes computed on the tumor, the host and the normalized tumor.
RADIOMICS_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "ngtdm", "gldm")
#: Shape features of pyradiomics that do not change with the tumor's size.
SCALE_FREE_SHAPE = frozenset({"Sphericity", "Elongation", "Flatness"})
#: ``<class>_<Name>`` of texture features that grow (or shrink) with the number of voxels.
VOLUME_DEPENDENT = frozenset(
    {
        "firstorder_Energy",
        "firstorder_TotalEnergy",
        "glrlm_GrayLevelNonUniformity",
        "glrlm_RunLengthNonUniformity",
        "glszm_GrayLevelNonUniformity",
        "glszm_SizeZoneNonUniformity",
        "gldm_DependenceNonUniformity",
        "gldm_GrayLevelNonUniformity",
        "ngtdm_Busyness",
        "ngtdm_Coarseness",
        "ngtdm_Strength",
    }
)


#: The host-normalized tumor is clipped to +-this many host-noise units (about +-250 HU) before
#: binning: one calcification or enhancing vessel would otherwise multiply the grey levels
#: (IRCAD 1.17's first tumor spans 126 units: 505 bins and 10 s instead of 0.5 s).
NORM_CLIP = 16.0


def load_radiomics() -> ModuleType:
    """Import pyradiomics with its logger silenced; a clear error when it is not installed."""
    try:
        import radiomics
        from radiomics import featureextractor  # noqa: F401  (fails early when SimpleITK is absent)
    except ImportError as exc:
        raise InputError(
            "radiomics features",
            f"need the optional package pyradiomics-bhklab (import radiomics), which could not "
            f"be imported ({exc})",
            fix='pip install "tumorsynth[realism]", or turn radiomics off (radiomics=False)',
        ) from None
    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return radiomics


@functools.lru_cache(maxsize=8)
def _extractor(bin_width: float, shape: bool) -> Any:
    load_radiomics()
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    extractor = RadiomicsFeatureExtractor(
        binWidth=float(bin_width), additionalInfo=False, label=1, minimumROIDimensions=1
    )
    extractor.disableAllFeatures()
    for name in RADIOMICS_CLASSES + (("shape",) if shape else ()):
        extractor.enableFeatureClassByName(name)
    return extractor


def resample(
    array: np.ndarray,
    spacing_mm: Sequence[float],
    target_mm: Sequence[float],
    *,
    mask: bool = False,
) -> Any:
    """A SimpleITK image of ``array`` (axes i, j, k; spacing in mm) resampled to ``target_mm``.

    The image is resampled with a B-spline; a mask (``mask=True``) as a linearly interpolated
    fraction thresholded at 0.5 (uint8). SimpleITK's x axis is ``array``'s axis 0, so pyradiomics'
    "slice" is the k (last) axis, as in a NIfTI CT.
    """
    import SimpleITK as sitk

    values = np.asarray(array, dtype=np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing_mm))
    extent = [n * s for n, s in zip(values.shape, spacing_mm)]
    size = [max(1, int(round(e / float(t)))) for e, t in zip(extent, target_mm)]
    # Centre the new grid on the old one: same physical box, new voxel size.
    origin = [
        (float(t) - s) / 2.0 + (e - n * float(t)) / 2.0
        for s, t, e, n in zip(spacing_mm, target_mm, extent, size)
    ]
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear if mask else sitk.sitkBSpline,
        origin,
        tuple(float(t) for t in target_mm),
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
    if mask:
        out = sitk.Cast(out >= 0.5, sitk.sitkUInt8)
    return out


def radiomics_features(
    image: np.ndarray,
    tumor: np.ndarray,
    shell: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    target_mm: Sequence[float] = (1.0, 1.0, 1.0),
    bin_width_hu: float = 25.0,
    norm_bin_width: float = 0.5,
    host_mean_hu: float = math.nan,
    host_noise_hu: float = math.nan,
    shape: bool = True,
) -> dict[str, float]:
    """pyradiomics features of one tumor crop (names in the module docstring).

    Parameters
    ----------
    image
        CT crop (HU).
    tumor, shell
        Boolean masks of the tumor and of its host shell in the crop.
    spacing_mm
        Voxel size of the crop (mm).
    target_mm
        Common spacing (mm) everything is resampled to first: radiomics depend on it.
    bin_width_hu
        Fixed grey-level bin width (HU) for the tumor and the host.
    norm_bin_width
        Bin width of the normalized tumor, in host-noise units.
    host_mean_hu, host_noise_hu
        Mean and fine-scale noise of the host (HU) for the normalization; NaN (or noise <= 0)
        leaves the ``norm_`` features NaN.
    shape
        Also compute pyradiomics' shape features of the tumor (``shape_rad_``/``size_rad_``);
        False for patches, which also leave out every ``size_`` feature.

    Returns
    -------
    dict
        Feature name -> value; a mask too small for pyradiomics (fewer than 2 voxels after
        resampling) gives NaN for its features, under the same names.
    """
    load_radiomics()
    img = resample(image, spacing_mm, target_mm)
    masks = {
        "tumor": resample(tumor, spacing_mm, target_mm, mask=True),
        "host": resample(shell, spacing_mm, target_mm, mask=True),
    }
    out: dict[str, float] = {}
    out.update(_run("tumor", img, masks["tumor"], bin_width_hu, shape))
    out.update(_run("host", img, masks["host"], bin_width_hu, False))
    usable = math.isfinite(host_mean_hu) and math.isfinite(host_noise_hu) and host_noise_hu > 0
    normalized = None
    if usable:
        import SimpleITK as sitk

        scaled = (img - float(host_mean_hu)) / float(host_noise_hu)
        normalized = sitk.Clamp(scaled, sitk.sitkFloat32, -NORM_CLIP, NORM_CLIP)
    out.update(_run("norm", normalized, masks["tumor"], norm_bin_width, False))
    if not shape:
        out = {k: v for k, v in out.items() if not k.startswith(("size_", "shape_"))}
    return out


def _run(prefix: str, image: Any, mask: Any, bin_width: float, shape: bool) -> dict[str, float]:
    """One pyradiomics extraction, renamed to our families; NaN for every name when it fails."""
    import SimpleITK as sitk

    extractor = _extractor(float(bin_width), shape)
    raw: dict[str, Any] | None = None
    if image is not None and int(sitk.GetArrayViewFromImage(mask).sum()) >= 2:
        try:
            raw = extractor.execute(image, mask, label=1)
        except (ValueError, RuntimeError, IndexError, ZeroDivisionError):
            raw = None
    if raw is None:
        return {_rename(prefix, k): math.nan for k in _reference_names(shape)}
    return {
        _rename(prefix, key): _number(value)
        for key, value in raw.items()
        if key.startswith("original_")
    }


def _number(value: Any) -> float:
    number = float(np.asarray(value, dtype=float).reshape(-1)[0])
    return number if math.isfinite(number) else math.nan


def _rename(prefix: str, key: str) -> str:
    """``original_glcm_Contrast`` -> ``tumor_glcm_Contrast`` (or ``size_``/``shape_rad_``)."""
    _, klass, name = key.split("_", 2)
    if klass == "shape":
        return f"{'shape' if name in SCALE_FREE_SHAPE else 'size'}_rad_{name}"
    if f"{klass}_{name}" in VOLUME_DEPENDENT:
        return f"size_{prefix}_{klass}_{name}"
    return f"{prefix}_{klass}_{name}"


@functools.lru_cache(maxsize=2)
def _reference_names(shape: bool) -> tuple[str, ...]:
    """pyradiomics' own names (``original_...``) for the enabled classes, from a small sphere."""
    import SimpleITK as sitk

    grid = np.indices((12, 12, 12)) - 5.5
    ball = (grid**2).sum(axis=0) < 16
    image = sitk.GetImageFromArray(np.where(ball, 50.0, 0.0).astype(np.float32) + grid[0])
    mask = sitk.GetImageFromArray(ball.astype(np.uint8))
    raw = _extractor(25.0, shape).execute(image, mask, label=1)
    return tuple(k for k in raw if k.startswith("original_"))
