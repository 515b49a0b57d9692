"""The protocol every tumor appearance generator implements (heuristic now, learned ones later).

A generator has a random side, :meth:`TumorGenerator.draw`, that only draws a JSON-serializable
appearance spec for a tumor whose shape and site are already fixed, and a deterministic side,
:meth:`TumorGenerator.render`, that turns a spec into new intensities in a crop. Records store the
spec; replaying it through ``render`` reproduces the voxels exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tumorsynth._types import SizeClass
from tumorsynth.organs.context import ParenchymaStats
from tumorsynth.organs.profile import OrganProfile
from tumorsynth.shapes.ellipsoid import ShapeField, ShapeSpec

__all__ = ["BatchTumorGenerator", "RenderInput", "TumorGenerator", "TumorSite"]


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
    context
        Only for generators with ``context_mm``: float32 HU of a larger crop around the tumor
        (after mass effect) that the generator reads but does not write.
    context_offset
        Where the crop's first voxel lies in ``context`` (voxels).
    affine
        The scan's voxel-to-world affine (orientation for generators that work in RAS), or None.
    """

    image: np.ndarray
    original: np.ndarray
    shape: ShapeField
    allowed: np.ndarray
    spacing_mm: tuple[float, float, float]
    context: np.ndarray | None = None
    context_offset: tuple[int, int, int] = (0, 0, 0)
    affine: np.ndarray | None = None

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


@runtime_checkable
class BatchTumorGenerator(TumorGenerator, Protocol):
    """A generator that reads context beyond what it writes and renders several tumors at once
    (learned models: one batched network call instead of one per tumor).

    The pipeline hands it every tumor whose crops do not depend on each other's results in one
    :meth:`render_batch` call; a given list of specs is always grouped the same way, so replay
    stays exact.
    """

    def context_mm(self, spec: Mapping[str, Any]) -> float:
        """Margin around the tumor that rendering ``spec`` reads (``RenderInput.context``)."""
        ...

    def render_batch(
        self, specs: Sequence[Mapping[str, Any]], inputs: Sequence[RenderInput]
    ) -> list[np.ndarray]:
        """:meth:`render` for several tumors; element ``i`` is what ``render`` would return."""
        ...
