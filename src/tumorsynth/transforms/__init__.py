"""On-the-fly synthesis in training pipelines (MONAI; needs the ``torch`` extra).

``RandTumorSynthd`` is imported lazily so ``import tumorsynth.transforms`` stays cheap until used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RandTumorSynthd"]


def __getattr__(name: str) -> Any:
    if name == "RandTumorSynthd":
        from tumorsynth.transforms.rand_tumor_synthd import RandTumorSynthd

        return RandTumorSynthd
    raise AttributeError(name)
