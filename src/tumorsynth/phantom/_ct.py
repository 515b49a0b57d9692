"""The phantom's CT finishing: the painted tissue map turned into an image in HU and its labels.

Each tissue gets its portal-venous HU with a per-seed spread of enhancement; the liver gets a
mottled parenchyma and its vessel trees with partial-volume edges; then the whole image is
blurred slightly, gets spatially correlated CT noise and is rounded to int16.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from tumorsynth.phantom._scene import (
    TISSUE_ID,
    TISSUE_LABEL,
    TISSUES,
    Box,
    Scene,
    VesselTree,
    capsules,
)

__all__ = ["render_ct"]

#: Label id of the intrahepatic vessels wide enough to be labelled (that of every vessel tissue).
_VESSEL_ID = TISSUES["vein"][1]
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
#: The same for the tissues of the organs added later, drawn from their own random stream.
_ADDED_ENHANCEMENT_SD_HU = {
    "colon_wall": 5.0,
    "esophagus_wall": 5.0,
    "myometrium": 7.0,
    "endometrium": 5.0,
}


def render_ct(
    scene: Scene,
    liver_box: Box | None,
    trees: Sequence[VesselTree],
    organs_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The painted scene as a CT image (int16 HU, scene axes) and its label map (uint8 ids of
    the ``"phantom"`` preset), drawing from ``scene.rng`` after the anatomy; the added organs'
    enhancement is drawn from ``organs_rng`` (None: left at its table value)."""
    rng = scene.rng
    hu = np.array([v for v, _, _ in TISSUES.values()], dtype=np.float32)
    for name, sd in _ENHANCEMENT_SD_HU.items():
        hu[TISSUE_ID[name]] += float(np.clip(rng.normal(0.0, sd), -2.0 * sd, 2.0 * sd))
    if organs_rng is not None:
        for name, sd in _ADDED_ENHANCEMENT_SD_HU.items():
            hu[TISSUE_ID[name]] += float(np.clip(organs_rng.normal(0.0, sd), -2.0 * sd, 2.0 * sd))
    image = hu[scene.tissue]
    label = TISSUE_LABEL[scene.tissue]
    if liver_box is not None:
        _liver_detail(scene, image, label, liver_box, trees)
    return _ct_finish(image, rng, noise_sd_hu=float(rng.uniform(13.0, 16.0))), label


def _liver_detail(
    scene: Scene,
    image: np.ndarray,
    label: np.ndarray,
    box: Box,
    trees: Sequence[VesselTree],
) -> None:
    """Mottled parenchyma and intrahepatic vessels with partial-volume edges. Vessels wider
    than 2 x ``_LABELLED_VESSEL_RADIUS_MM`` are labelled vessel; thinner ones stay liver."""
    liver = scene.tissue[box] == TISSUE_ID["liver"]
    sub = image[box]
    sub += np.where(liver, 4.0 * scene.noise(liver.shape, 12.0), 0.0).astype(np.float32)
    edge_mm = float(np.prod(scene.spacing)) ** (1 / 3)
    for segments, hu in trees:
        sd, radius = capsules(scene, box, segments)
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
