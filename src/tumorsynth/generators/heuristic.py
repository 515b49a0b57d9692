"""The heuristic (SynTumor-class) appearance generator, calibrated to the scan it works on.

What it adds to SynTumor's texture-times-blurred-mask recipe:

- contrast is set relative to the organ's *measured* parenchymal HU (liver tumors -15..-40 HU at
  the rim, darker towards the centre, as in IRCAD 1.17), not a fixed 65-145 HU subtraction;
- the scan's own noise stays: the tumor replaces the low-frequency content (2 mm Gaussian) of the
  tissue, and the high-frequency residual (noise, clipped at 2.5 sigma so vessels do not shine
  through) is kept, so tumor noise has the scan's own amplitude and grain;
- heterogeneity as in real tumors: a smooth random texture, a darker centre, optional necrotic
  core, enhancing rim (or hypodense halo) and dense spots for larger tumors;
- (version 1.1) a fine-grained texture of the tumor's own on top of the scan's noise, its std set
  relative to the scan's measured noise, so the tumor's fine-scale noise is ``noise_ratio`` times
  its host's (real tumors are noisier than their host, synthetic ones were not);
- cysts near water density (0-20 HU) with sharp margins.

Edge softness comes from the signed distance (an analytic Gaussian-blurred edge), not from filtering.

Version history (a record replays only with the version that made it):

- 1.0: the first calibration on IRCAD 1.17.
- 1.1: ``grain_ratio`` (the tumor's own fine grain), ``centre_power`` and ``centre_depth_mm``
  (the darker centre's depth profile); the organ profiles draw more interior texture, sharper
  liver edges, hypodense halos as well as enhancing rims, liver centres that darken within a
  few mm of the edge. A 1.1 spec with the new fields at their defaults (``grain_ratio=0``,
  ``centre_power=1.5``, ``centre_depth_mm=0``) renders exactly as 1.0 did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from tumorsynth._types import plain_json
from tumorsynth.box import Box
from tumorsynth.generators.noise import NOISE_SIGMA_MM, low_pass, scan_noise, tumor_grain
from tumorsynth.generators.protocol import RenderInput, TumorGeneratorBase, TumorSite
from tumorsynth.shapes.ellipsoid import soft_mask
from tumorsynth.shapes.fields import crop_axes_mm, smooth_random_field

__all__ = ["DenseSpot", "HeuristicAppearance", "HeuristicGenerator", "grain_ratio"]

_SIZE_TEXTURE_GAIN = {"tiny": 0.4, "small": 0.6, "medium": 0.9, "large": 1.0}
_SIZE_CENTRE_GAIN = {"tiny": 0.0, "small": 0.3, "medium": 0.8, "large": 1.0}


def grain_ratio(noise_ratio: float) -> float:
    """The ``grain_ratio`` that makes a tumor's fine-scale noise ``noise_ratio`` times its
    host's: independent grain adds in quadrature, ``sqrt(noise_ratio**2 - 1)`` (0 at or below 1).

    Examples
    --------
    >>> round(grain_ratio(1.25), 6), grain_ratio(0.9)
    (0.75, 0.0)
    """
    return float(np.sqrt(max(noise_ratio * noise_ratio - 1.0, 0.0)))


@dataclass(frozen=True)
class DenseSpot:
    """A small dense focus (calcification or enhancing nodule): offset (mm) from the tumor centre,
    radius (mm, Gaussian std) and peak HU added."""

    offset_mm: tuple[float, float, float]
    radius_mm: float
    hu: float


@dataclass(frozen=True)
class HeuristicAppearance:
    """Frozen appearance spec of one heuristic tumor (all intensities in HU).

    Attributes
    ----------
    kind
        ``solid`` tumor or ``cyst`` (water density, sharp margin, no texture).
    parenchyma_hu, noise_hu
        The organ's measured median and noise, frozen here so replay does not re-measure.
    target_hu
        Tumor HU at its periphery (solid) or the cyst's HU.
    centre_drop_hu, centre_power
        How much darker the centre is than the periphery, with the depth profile
        ``depth ** centre_power`` (``depth``: distance from the edge over the smallest radius,
        at most 1); 1.5 concentrates the drop in the centre, 1 darkens steadily from the edge.
    centre_depth_mm
        Above 0 (version 1.1 draws), the drop follows ``1 - exp(-(depth_mm / centre_depth_mm)^2)``
        instead (``depth_mm``: distance inside the edge): a rim a few mm wide stays near
        ``target_hu``, and the drop is nearly whole ``2 x centre_depth_mm`` inside.
    texture_hu, texture_scale_mm, texture_seed
        Std, correlation length and seed of the smooth internal texture.
    edge_width_mm
        Std of the Gaussian edge.
    necrosis_fraction, necrosis_hu
        Inner fraction of the normalized depth that is necrotic (0 = none), and its HU.
    rim_hu, rim_width_mm
        Rim added at the periphery: enhancing (> 0), hypodense halo (< 0) or none (0).
    dense_spots
        Small dense foci (see :class:`DenseSpot`).
    grain_ratio
        Std of the tumor's own fine-grained texture (:func:`~tumorsynth.generators.noise.
        tumor_grain`, seeded by ``texture_seed + 2``) relative to ``noise_hu``: the tumor's
        fine-scale noise is about ``sqrt(1 + grain_ratio**2)`` times the scan's (0 = the scan's
        noise alone, as in version 1.0).
    """

    kind: Literal["solid", "cyst"]
    parenchyma_hu: float
    noise_hu: float
    target_hu: float
    centre_drop_hu: float = 0.0
    texture_hu: float = 0.0
    texture_scale_mm: float = 4.0
    texture_seed: int = 0
    edge_width_mm: float = 1.0
    necrosis_fraction: float = 0.0
    necrosis_hu: float = 20.0
    rim_hu: float = 0.0
    rim_width_mm: float = 2.0
    dense_spots: tuple[DenseSpot, ...] = field(default_factory=tuple)
    grain_ratio: float = 0.0
    centre_power: float = 1.5
    centre_depth_mm: float = 0.0

    @property
    def contrast_hu(self) -> float:
        return self.target_hu - self.parenchyma_hu

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dense_spots"] = [asdict(s) for s in self.dense_spots]
        return plain_json(data)  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeuristicAppearance:
        values = dict(data)
        values["dense_spots"] = tuple(
            DenseSpot(tuple(s["offset_mm"]), float(s["radius_mm"]), float(s["hu"]))
            for s in values.get("dense_spots", ())
        )
        return cls(**values)


class HeuristicGenerator(TumorGeneratorBase):
    """SynTumor-class appearance, calibrated to the scan (see module docstring).

    Examples
    --------
    >>> from tumorsynth.generators import TumorGenerator
    >>> isinstance(HeuristicGenerator(), TumorGenerator)
    True
    """

    name = "heuristic"
    version = "1.1"

    # -- random side ---------------------------------------------------------------------------
    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]:
        """Draw an appearance for the tumor at ``site`` from its organ profile's ranges."""
        rules = site.profile.appearance
        stats = site.parenchyma
        size = site.size_class
        if rng.random() < rules.cyst_probability:
            spec = HeuristicAppearance(
                kind="cyst",
                parenchyma_hu=stats.median_hu,
                noise_hu=stats.noise_hu,
                target_hu=float(rng.uniform(*rules.cyst_hu)),
                edge_width_mm=float(rng.uniform(*rules.cyst_edge_width_mm)),
                texture_seed=int(rng.integers(2**31 - 1)),
            )
            return spec.to_dict()
        bigger = size in ("medium", "large")
        necrosis = bigger and rng.random() < rules.necrosis_probability
        rim = bigger and rng.random() < rules.rim_probability
        spots = bigger and rng.random() < rules.dense_spot_probability
        min_radius = min(site.shape.radii_mm)
        phase = rules.enhancement(stats.median_hu)  # less contrast on a non-contrast scan
        spec = HeuristicAppearance(
            kind="solid",
            parenchyma_hu=stats.median_hu,
            noise_hu=stats.noise_hu,
            target_hu=stats.median_hu + phase * float(rng.uniform(*rules.contrast_hu)),
            centre_drop_hu=(
                phase * float(rng.uniform(*rules.centre_drop_hu)) * _SIZE_CENTRE_GAIN[size]
            ),
            texture_hu=float(rng.uniform(*rules.texture_hu)) * _SIZE_TEXTURE_GAIN[size],
            # A texture as coarse as the tumor would move its mean, not texture it.
            texture_scale_mm=min(
                float(rng.uniform(*rules.texture_scale_mm)), max(0.5 * min_radius, 2.5)
            ),
            texture_seed=int(rng.integers(2**31 - 1)),
            edge_width_mm=float(rng.uniform(*rules.edge_width_mm)),
            necrosis_fraction=float(rng.uniform(*rules.necrosis_fraction)) if necrosis else 0.0,
            necrosis_hu=float(rng.uniform(*rules.necrosis_hu)),
            rim_hu=float(rng.uniform(*rules.rim_hu)) if rim else 0.0,
            rim_width_mm=float(rng.uniform(*rules.rim_width_mm)),
            dense_spots=self._draw_spots(rng, min_radius, rules.dense_spot_hu) if spots else (),
            grain_ratio=grain_ratio(float(rng.uniform(*rules.noise_ratio))),
            centre_power=float(rng.uniform(*rules.centre_power)),
            centre_depth_mm=(
                float(rng.uniform(*rules.centre_depth_mm)) if rules.centre_depth_mm[1] > 0 else 0.0
            ),
        )
        return spec.to_dict()

    @staticmethod
    def _draw_spots(
        rng: np.random.Generator, min_radius: float, hu_range: tuple[float, float]
    ) -> tuple[DenseSpot, ...]:
        spots = []
        for _ in range(int(rng.integers(1, 5))):
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            offset = direction * rng.uniform(0.0, 0.6) * min_radius
            spots.append(
                DenseSpot(
                    tuple(float(v) for v in offset),  # type: ignore[arg-type]
                    float(rng.uniform(1.0, 2.5)),
                    float(rng.uniform(*hu_range)),
                )
            )
        return tuple(spots)

    # -- deterministic side --------------------------------------------------------------------
    def margin_mm(self, spec: Mapping[str, Any]) -> float:
        """Soft edge (3.5 std) plus the 3-sigma reach of the noise-separating filter."""
        return 3.5 * float(spec["edge_width_mm"]) + 3.0 * NOISE_SIGMA_MM

    def render(self, spec: Mapping[str, Any], inputs: RenderInput) -> np.ndarray:
        """Blend the tumor into ``inputs.image``: ``(1 - m) * W + m * (target + noise + grain)``.

        ``W`` is the background (inside the tumor: the tissue before mass effect), ``m`` the soft
        tumor weight restricted to the allowed region, ``noise`` the clipped 2 mm high-pass
        residual of ``W``: the scan's own noise; ``grain`` the tumor's own fine texture
        (``grain_ratio``), drawn over the bounding box of ``m > 0`` only.
        """
        app = HeuristicAppearance.from_dict(spec)
        distance = inputs.shape.distance_mm
        inside = (distance < 0) & inputs.allowed
        background = np.where(inside, inputs.original, inputs.image).astype(np.float32, copy=False)
        weight = soft_mask(distance, app.edge_width_mm)
        weight *= inputs.allowed
        low = low_pass(background, inputs.spacing_mm)
        noise = scan_noise(
            background, low, weight, app.parenchyma_hu, app.noise_hu, app.texture_seed + 1
        )
        target = self._target(app, inputs)
        if app.grain_ratio > 0:
            found = Box.of_mask(weight > 0)
            if found is not None:
                std_hu = app.grain_ratio * max(app.noise_hu, 1.0)
                noise[found.slices] += tumor_grain(found.shape, std_hu, app.texture_seed + 2)
        return background + weight * (target + noise - background)

    def _target(self, app: HeuristicAppearance, inputs: RenderInput) -> np.ndarray:
        """Tumor HU without noise (the low-frequency content that replaces the tissue)."""
        box = inputs.shape.box
        target = np.full(box.shape, np.float32(app.target_hu), dtype=np.float32)
        if app.kind == "cyst":
            return target
        depth = inputs.shape.depth
        if app.centre_drop_hu:
            if app.centre_depth_mm > 0:
                inside = np.maximum(-inputs.shape.distance_mm, np.float32(0.0))
                inside *= np.float32(1.0 / app.centre_depth_mm)
                profile = -np.expm1(-(inside * inside))
            elif app.centre_power == 1.5:  # version 1.0's profile, bit for bit
                profile = depth * np.sqrt(depth)
            else:
                profile = np.power(depth, np.float32(app.centre_power))
            target -= np.float32(app.centre_drop_hu) * profile
        if app.texture_hu or app.necrosis_fraction:
            center = inputs.shape.center_vox
            axes = crop_axes_mm(box.origin, box.shape, inputs.spacing_mm, center)
            extent = max(float(np.abs(a).max()) for a in axes)
            texture = smooth_random_field(
                axes,
                scale_mm=app.texture_scale_mm,
                extent_mm=extent,
                seed=app.texture_seed,
                components=2 if app.necrosis_fraction else 1,
            )
            target += np.float32(app.texture_hu) * texture[0]
            if app.necrosis_fraction:
                edge = (depth - np.float32(1.0 - app.necrosis_fraction)) + np.float32(
                    0.12
                ) * texture[1]
                necrotic = 1.0 / (1.0 + np.exp(-edge / np.float32(0.04)))
                target += necrotic * (np.float32(app.necrosis_hu) - target)
        if app.rim_hu:
            rim = np.clip(1.0 + inputs.shape.distance_mm / np.float32(app.rim_width_mm), 0.0, 1.0)
            target += np.float32(app.rim_hu) * rim
        if app.dense_spots:
            center = inputs.shape.center_vox
            x, y, z = crop_axes_mm(box.origin, box.shape, inputs.spacing_mm, center)
            for spot in app.dense_spots:
                ox, oy, oz = spot.offset_mm
                r2 = (
                    (x - ox)[:, None, None] ** 2
                    + (y - oy)[None, :, None] ** 2
                    + (z - oz)[None, None, :] ** 2
                ).astype(np.float32)
                target += np.float32(spot.hu) * np.exp(-r2 / np.float32(2 * spot.radius_mm**2))
        return target
