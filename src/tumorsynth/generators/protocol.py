"""The protocol every tumor appearance generator implements, and its defaults.

A generator has a random side, :meth:`TumorGenerator.draw`, that only draws a JSON-serializable
appearance spec for a tumor whose shape and site are already fixed, and a deterministic side,
:meth:`TumorGenerator.render` (and :meth:`~TumorGenerator.render_batch` for several tumors), that
turns a spec into new intensities in a crop. Records store the spec and the generator's
:attr:`~TumorGenerator.options`; replaying them reproduces the voxels exactly.

A new generator subclasses :class:`TumorGeneratorBase` (which answers ``context_mm``,
``render_batch`` and ``options`` for a generator that reads only its crop, renders one tumor at a
time and is rebuilt from its name alone), writes ``draw``, ``margin_mm`` and ``render``, and is
made known with one :func:`~tumorsynth.generators.register_generator` call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tumorsynth._types import SizeClass
from tumorsynth.organs.context import ParenchymaStats
from tumorsynth.organs.profile import OrganProfile
from tumorsynth.shapes.ellipsoid import ShapeField, ShapeSpec

__all__ = ["RenderInput", "TumorGenerator", "TumorGeneratorBase", "TumorSite"]


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
        float32 HU of a crop that holds ``image`` (after mass effect) and at least
        :meth:`TumorGenerator.context_mm` around the tumor: what the generator may read. It is
        never written; for a generator that reads only its crop it may be ``image`` itself.
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
    context: np.ndarray
    context_offset: tuple[int, int, int] = (0, 0, 0)
    affine: np.ndarray | None = None

    @property
    def tumor_mask(self) -> np.ndarray:
        return (self.shape.distance_mm < 0) & self.allowed


@runtime_checkable
class TumorGenerator(Protocol):
    """Appearance model: draw a spec (random), render specs (deterministic)."""

    #: Registry name, written to every record (``heuristic``, ``diffusion``, ...).
    name: str
    #: Version of the rendering; a record made by another version may not replay exactly.
    version: str

    @property
    def options(self) -> Mapping[str, Any]:
        """JSON-able options that rebuild this generator: ``get_generator(name, **options)``
        (a checkpoint path and the hashes of its files, for instance; never the device)."""
        ...

    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]:
        """Draw a JSON-serializable appearance spec for the tumor at ``site``."""
        ...

    def margin_mm(self, spec: Mapping[str, Any]) -> float:
        """Extra crop margin around the tumor that rendering ``spec`` writes (soft edge)."""
        ...

    def context_mm(self, spec: Mapping[str, Any]) -> float:
        """Margin around the tumor that rendering ``spec`` reads (``RenderInput.context``)."""
        ...

    def render(self, spec: Mapping[str, Any], inputs: RenderInput) -> np.ndarray:
        """New float32 HU for the whole crop; voxels the tumor does not touch keep ``inputs.image``."""
        ...

    def render_batch(
        self, specs: Sequence[Mapping[str, Any]], inputs: Sequence[RenderInput]
    ) -> list[np.ndarray]:
        """:meth:`render` for several tumors; element ``i`` is what ``render`` would return.

        The pipeline hands over every tumor whose crops do not depend on each other's results in
        one call; a given list of specs is always grouped the same way, so replay stays exact.
        """
        ...


class TumorGeneratorBase(ABC):
    """The protocol's defaults: reads nothing beyond its crop (``context_mm`` 0), renders one
    tumor at a time (``render_batch`` loops over ``render``), needs no options to be rebuilt.

    Examples
    --------
    >>> class Brighter(TumorGeneratorBase):
    ...     name, version = "brighter", "1"
    ...     def draw(self, site, rng):
    ...         return {"delta_hu": float(rng.uniform(10, 20))}
    ...     def margin_mm(self, spec):
    ...         return 0.0
    ...     def render(self, spec, inputs):
    ...         return inputs.image + spec["delta_hu"] * inputs.tumor_mask
    >>> isinstance(Brighter(), TumorGenerator), Brighter().context_mm({}), Brighter().options
    (True, 0.0, {})
    """

    name: str
    version: str

    @property
    def options(self) -> Mapping[str, Any]:
        return {}

    @abstractmethod
    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]: ...

    @abstractmethod
    def margin_mm(self, spec: Mapping[str, Any]) -> float: ...

    def context_mm(self, spec: Mapping[str, Any]) -> float:
        return 0.0

    @abstractmethod
    def render(self, spec: Mapping[str, Any], inputs: RenderInput) -> np.ndarray: ...

    def render_batch(
        self, specs: Sequence[Mapping[str, Any]], inputs: Sequence[RenderInput]
    ) -> list[np.ndarray]:
        return [self.render(spec, inp) for spec, inp in zip(specs, inputs, strict=True)]
