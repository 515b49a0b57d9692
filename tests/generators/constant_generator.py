"""A generator defined only in the tests: a constant HU offset inside the tumor.

It is what a new generator is, one module and one ``register_generator`` call: the shared
protocol tests (``test_protocol.py``), synthesis and replay run it with no other change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tumorsynth.generators import RenderInput, TumorGeneratorBase, TumorSite, register_generator


class ConstantGenerator(TumorGeneratorBase):
    """Adds ``offset_hu`` (times a drawn factor in [0.8, 1.2]) to every tumor voxel."""

    name = "constant"
    version = "1.0"

    def __init__(self, offset_hu: float = -40.0) -> None:
        self.offset_hu = float(offset_hu)

    @property
    def options(self) -> dict[str, Any]:
        return {"offset_hu": self.offset_hu}

    def draw(self, site: TumorSite, rng: np.random.Generator) -> dict[str, Any]:
        return {"delta_hu": self.offset_hu * float(rng.uniform(0.8, 1.2))}

    def margin_mm(self, spec: Mapping[str, Any]) -> float:
        return 0.0

    def render(self, spec: Mapping[str, Any], inputs: RenderInput) -> np.ndarray:
        delta = np.float32(spec["delta_hu"])
        return np.where(inputs.tumor_mask, inputs.image + delta, inputs.image).astype(np.float32)


register_generator("constant", ConstantGenerator)
