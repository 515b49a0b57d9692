"""On-the-fly synthesis in training pipelines (MONAI; needs the ``torch`` extra).

``RandTumorSynthd`` is imported lazily so ``import tumorsynth.transforms`` stays cheap until used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RandTumorSynthd", "TumorSynthd"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tumorsynth.transforms import rand_tumor_synthd

        return getattr(rand_tumor_synthd, name)
    raise AttributeError(name)
