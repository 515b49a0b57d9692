"""The phantom's uterus, placed at the lowest slices of the FOV (not to scale).

The phantom is an upper abdomen; its FOV does not reach the pelvis. So that every case has a
uterus to put tumors in, :func:`paint_uterus` sets one, anteverted, in the midline in front of
the aorta with its cervix a few mm above the FOV's bottom slice, wherever that bottom is, and
its top never above z = -5 mm, under most of the upper abdominal organs (a FOV too short for
that gets a smaller uterus, down to 5 cm long, which the pancreatic head may notch; a still
shorter one cuts it). It is painted only over fat and small-bowel loops, so it never cuts a
solid organ, the colon, a vessel or a muscle. Its shape is a pear, about 8 x 5 x 4 cm: a body
(corpus and fundus) smoothly joined to a narrower cervix, of enhancing myometrium around a
slightly hypodense endometrial stripe that narrows into the endocervical canal.
"""

from __future__ import annotations

import numpy as np

from tumorsynth.phantom._scene import Scene, ellipsoid_f, rotation, smooth_min

__all__ = ["paint_uterus"]

#: Tissues the uterus may be painted over: fat and the small-bowel loops around it.
_UTERUS_ONTO = ("visceral_fat", "bowel_wall", "bowel_fluid", "gas")
#: Highest point of the uterus (mm, world z, for a patient of reference size): below the renal
#: veins, the pancreas and the transverse colon's lowest reach at the midline.
_TOP_MM = -5.0
#: In a FOV too short for it below ``_TOP_MM`` the uterus shrinks, down to this factor (a 5 cm
#: uterus, as after menopause), and is cut by the FOV's floor if it still does not fit.
_MIN_SCALE = 0.65


def paint_uterus(organs: Scene) -> None:
    """Paint the uterus (myometrium and endometrium) at the bottom of ``organs``' FOV.

    The shape is built in the uterus' own frame (mm: ``u`` lateral, ``v`` antero-posterior,
    ``w`` along its long axis from cervix to fundus), then tilted forward (anteversion 20-40
    degrees) and a little to either side.
    """
    rng = organs.rng
    g = organs.g
    body = organs.size(26.0, 20.0, 28.0, sd=0.06)  # corpus and fundus radii (u, v, w), mm
    cervix = organs.size(13.0, 12.0, 17.0, sd=0.08)
    cervix_w = -(0.55 * body[2] + 0.75 * cervix[2])  # its centre along w from the body's (mm)
    anteversion_deg = float(rng.uniform(20.0, 40.0))
    rot = rotation(-anteversion_deg, float(rng.normal(0.0, 6.0)), float(rng.normal(0.0, 6.0)))
    # the organ's world box about the body's centre (mm; each part an ellipsoid), then its place:
    # the cervix just above the FOV's floor, the top below z = _TOP_MM (scaled down to fit)
    parts = [(np.zeros(3), body * (1.15, 1.15, 1.0)), (cervix_w * rot[:, 2], cervix)]
    half = [np.sqrt(((rot * radii) ** 2).sum(axis=1)) for _, radii in parts]
    extent = np.array([c + sign * h for (c, _), h in zip(parts, half) for sign in (-1, 1)])
    z_floor = float(organs.axes[2][0]) + 3.0 + organs.spacing[2]
    top = _TOP_MM * g[2]
    height = float(np.ptp(extent[:, 2]))
    scale = float(np.clip((top - z_floor) / height, _MIN_SCALE, 1.0))
    body, cervix, cervix_w, extent = body * scale, cervix * scale, cervix_w * scale, extent * scale
    center = np.array(
        [
            float(rng.normal(0.0, 4.0)),
            -16.0 * g[1] + 16.0 - extent[:, 1].min(),  # posterior side in front of the aorta
            min(z_floor - extent[:, 2].min(), top - extent[:, 2].max()),
        ]
    )
    lo, hi = center + extent.min(0) - 3.0, center + extent.max(0) + 3.0
    box = organs.box(lo, hi)
    if box is None:
        return
    xyz = organs.xyz(box)
    axis = rot[:, 2]
    f = smooth_min(
        ellipsoid_f(xyz, center, body, rot, 0.15),
        ellipsoid_f(xyz, center + (cervix_w * axis), cervix, rot),
        0.35,
    )
    f += 0.03 * organs.noise(f.shape, 25.0)
    uterus = f < 0
    organs.paint(box, uterus, "myometrium", onto=_UTERUS_ONTO)
    cavity = body * np.array([0.45, 0.25, 0.7])
    canal = np.array([2.5, 2.5, 0.9 * cervix[2]])
    stripe = np.minimum(
        ellipsoid_f(xyz, center + 0.15 * body[2] * axis, cavity, rot, 0.7),
        ellipsoid_f(xyz, center + (cervix_w + 0.2 * cervix[2]) * axis, canal, rot),
    )
    organs.paint(box, uterus & (stripe < 0), "endometrium", onto=("myometrium",))
