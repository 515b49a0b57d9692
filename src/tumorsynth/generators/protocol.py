"""The protocol every tumor appearance generator implements (heuristic now, learned ones later).

A generator has a random side, :meth:`TumorGenerator.draw`, that only draws a JSON-serializable
appearance spec for a tumor whose shape and site are already fixed, and a deterministic side,
:meth:`TumorGenerator.render`, that turns a spec into new intensities in a crop. Records store the
spec; replaying it through ``render`` reproduces the voxels exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tumorsynth._types import SizeClass
from tumorsynth.organs.context import ParenchymaStats
from tumorsynth.organs.profile import OrganProfile
from tumorsynth.shapes.ellipsoid import ShapeField, ShapeSpec

__all__ = ["TumorSite", "RenderInput", "TumorGenerator"]


@dataclass(frozen=True)
class TumorSite:
    """What a generator may know when drawing a tumor's appearance."""

    organ: str
    size_class: SizeClass
    profile: OrganProfile
    parenchyma: ParenchymaStats
    shape: ShapeSpec
    spacing_mm: tuple[float, float, float]


@dataclass
class RenderInput:
    """One tumor's crop, as the generator renders it.

    Attributes
    ----------
    image
        float32 HU of the crop after mass effect: the background the tumor is blended into.
    original
        float32 HU of the same crop before mass effect (the scan's own texture inside the tumor).
    shape
        Signed distance (mm, negative inside) and normalized depth, on the same crop.
    allowed
        bool: where tumor voxels may be (organ, plus the allowed bulge); the label is
        ``shape.distance_mm < 0 & allowed``.
    spacing_mm
        Voxel size of the crop's axes.
    """

    image: np.ndarray
    original: np.ndarray
    shape: ShapeField
    allowed: np.ndarray
    spacing_mm: tuple[float, float, float]

    @property
    def tumor_mask(self) -> np.ndarray:
        return (self.shape.distance_mm < 0) & self.allowed


@runtime_checkable
class TumorGenerator(Protocol):
    """Appearance model: draw a spec (random), render a spec (deterministic)."""

    #: Registry name, written to every record (``heuristic``, ``diffusion``, ...).
    name: str
    #: Version of the rendering; a record made by another version may not replay exactly.
    version: str

    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]:
        """Draw a JSON-serializable appearance spec for the tumor at ``site``."""
        ...

    def margin_mm(self, spec: Mapping[str, Any]) -> float:
        """Extra crop margin around the tumor that rendering ``spec`` touches (soft edge)."""
        ...

    def render(self, spec: Mapping[str, Any], inputs: RenderInput) -> np.ndarray:
        """New float32 HU for the whole crop; voxels the tumor does not touch keep ``inputs.image``."""
        ...
