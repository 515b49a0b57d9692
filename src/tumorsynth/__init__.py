"""tumorsynth: realistic synthetic tumors in healthy CT, at native spacing.

The top-level package stays light (``tumorsynth --help`` must answer fast); import what you need
from the subpackages: :mod:`tumorsynth.pipelines` (synthesize and replay), :mod:`tumorsynth.io`,
:mod:`tumorsynth.organs`, :mod:`tumorsynth.shapes`, :mod:`tumorsynth.generators`,
:mod:`tumorsynth.transforms` (MONAI, needs the ``torch`` extra).
"""

__version__ = "0.1.0"

#: The appearance generator used when none is named (the only one that needs no checkpoint).
DEFAULT_GENERATOR = "heuristic"

__all__ = ["DEFAULT_GENERATOR", "__version__"]
