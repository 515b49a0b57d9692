"""A procedural, clearly synthetic, contrast-enhanced abdominal CT phantom with organ labels.

:func:`make_phantom` paints a healthy portal-venous abdomen in world mm (FOV centre at world 0;
scene axes ``+x`` patient left, ``+y`` anterior, ``+z`` superior): body wall, spine, lower ribs,
liver with portal and hepatic vein trees, gallbladder, spleen, kidneys, pancreas, stomach, colon
(wall, air and dependent fluid), small bowel, esophagus, aorta, IVC and veins, lung bases, and a
uterus set at the lowest slices (the FOV is an upper abdomen: not to scale there, so that every
case has one). Organs are implicit shapes (ellipsoids, tubes) deformed by
smooth noise, painted into a tissue map by priority (the liver stops at the muscle wall, bone
cuts everything); the image is that map in HU, slightly blurred, plus correlated CT noise, and
both arrays are mirrored along x into RAS+. The NIfTI description says it is not a patient;
label ids follow the ``"phantom"`` preset of :mod:`tumorsynth.io.label_maps`, and tumor ids
never appear (the phantom is healthy).

The package splits that work by role: ``_scene`` (tissue table, voxel grid, implicit shapes),
``_anatomy`` (the structures, painted in order), ``_hollow`` (the colon's lumen, the esophagus),
``_pelvis`` (the uterus) and ``_ct`` (HU, liver detail, blur and noise). The colon's lumen, the
esophagus and the uterus were added later: they draw from their own random stream
(``default_rng([seed, 15])``) and are painted only over fat, bowel, lung and heart, so a seed's
older labels and CT noise are as before them, and its image differs only within a few voxels
of them (blur, and a fat plane between the esophagus and the heart).
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np

from tumorsynth._types import RngLike
from tumorsynth.errors import InputError
from tumorsynth.io.nifti import Volume
from tumorsynth.phantom._anatomy import paint_abdomen
from tumorsynth.phantom._ct import render_ct
from tumorsynth.phantom._scene import Scene

__all__ = ["PHANTOM_DESCRIPTION", "make_phantom"]

#: NIfTI ``descrip`` of both phantom volumes.
PHANTOM_DESCRIPTION = "tumorsynth PHANTOM (synthetic, not a patient)"
#: Second word of the added organs' seed, ``default_rng([seed, _ADDED_ORGANS_KEY])`` (the issue
#: that added them), keeping their draws out of the older structures' stream.
_ADDED_ORGANS_KEY = 15


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
        and renal veins, intrahepatic vessels wider than 6 mm), 9 bone, 10 colon and 11
        esophagus (wall and lumen), 12 uterus. Both share the RAS+
        affine ``diag(spacing)`` with the FOV centre at world (0, 0, 0), carry a NIfTI header
        whose description is :data:`PHANTOM_DESCRIPTION`, ``path=None`` and
        ``meta={"phantom": True, "seed": int}``.

    Examples
    --------
    >>> image, label = make_phantom(1, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    >>> image.array.dtype, label.array.dtype, image.spacing_mm
    (dtype('int16'), dtype('uint8'), (4.0, 4.0, 5.0))
    >>> sorted(int(v) for v in np.unique(label.array))
    [0, 1, 3, 5, 7, 8, 9, 10, 11, 12]
    """
    shape_t, spacing = _check_grid(shape, spacing_mm)
    seed_int = _resolve_seed(seed)
    image, label = _phantom_arrays(seed_int, shape_t, spacing)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [float(np.float32(-(n - 1) / 2.0 * s)) for n, s in zip(shape_t, spacing)]
    meta = {"phantom": True, "seed": seed_int}
    return (
        Volume(image, affine, _header(image, affine), None, dict(meta)),
        Volume(label, affine, _header(label, affine), None, dict(meta)),
    )


def _phantom_arrays(
    seed: int,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    added_organs: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The phantom's image (int16 HU) and label (uint8) arrays in RAS+ for a checked grid.

    ``added_organs=False`` paints the phantom as it was before the colon, esophagus and uterus
    were labelled (the colon frame as unlabelled gas and stool): tests compare the two to show
    that adding them left every older structure where it was.
    """
    rng = np.random.default_rng(seed)
    organs_rng = np.random.default_rng([seed, _ADDED_ORGANS_KEY]) if added_organs else None
    axes = tuple(
        ((np.arange(n) - (n - 1) / 2.0) * s).astype(np.float32) for n, s in zip(shape, spacing)
    )
    gx, gy, gz = (float(v) for v in rng.normal(1.0, 0.035, 3).clip(0.92, 1.08))  # body size
    scene = Scene(
        (axes[0], axes[1], axes[2]), spacing, np.zeros(shape, np.uint8), rng, (gx, gy, gz)
    )
    organs = None if organs_rng is None else scene.fork(organs_rng)
    liver_box, trees = paint_abdomen(scene, organs)
    image, label = render_ct(scene, liver_box, trees, organs_rng)
    # The scene is modelled with -x toward the patient's right (LPS-like); RAS+ has +x toward the
    # right, and the x axis is symmetric about 0, so mirroring the arrays puts the liver on the
    # patient's right and the spleen on the left, as in every real scan.
    return np.ascontiguousarray(image[::-1]), np.ascontiguousarray(label[::-1])


def _check_grid(
    shape: Sequence[int], spacing_mm: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The grid as 3 ints >= 8 and 3 voxel sizes in [0.3, 20] mm, or an InputError."""
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
