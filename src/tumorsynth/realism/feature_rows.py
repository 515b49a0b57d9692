"""The rows of the realism study: settings, one tumor's features, one input case, feature families.

Split from :mod:`tumorsynth.realism.features` (which measures the rows and re-exports all of
this) so the statistics and the report read rows without loading the measuring code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import LabelMap
from tumorsynth.realism.appearance import CONTEXT_DESCRIPTIONS
from tumorsynth.realism.shape_features import SHAPE_DESCRIPTIONS

__all__ = [
    "FAMILIES",
    "FEATURES_VERSION",
    "FEATURE_DESCRIPTIONS",
    "CaseInput",
    "FeatureSettings",
    "TumorFeatures",
    "feature_family",
    "tumor_organs",
]

#: Bump when a feature's definition changes: cached feature files of other versions are not used.
FEATURES_VERSION = 1

#: The feature families, in the order reports list them.
FAMILIES = ("size", "shape", "ctx", "rel", "host", "tumor", "norm")

#: Words for tumorsynth's own (non-radiomics) features.
FEATURE_DESCRIPTIONS: Mapping[str, str] = {**SHAPE_DESCRIPTIONS, **CONTEXT_DESCRIPTIONS}


def feature_family(name: str) -> str:
    """The family of a feature name: its prefix before the first ``_``.

    Examples
    --------
    >>> feature_family("rel_noise_ratio"), feature_family("size_tumor_firstorder_Energy")
    ('rel', 'size')
    """
    family = name.split("_", 1)[0]
    if family not in FAMILIES or "_" not in name:
        raise ValueError(f"feature {name!r}: expected a name <family>_..., family in {FAMILIES}")
    return family


@dataclass(frozen=True)
class FeatureSettings:
    """How tumors are found and measured (all of it goes into the cache key).

    Attributes
    ----------
    spacing_mm
        Common spacing (mm) the crops are resampled to for radiomics (which depend on it).
    bin_width_hu
        Fixed grey-level bin width (HU) of the radiomics of the tumor and of the host.
    shell_mm
        Inner and outer distance (mm) from the tumor of the host shell (organ voxels, no tumor).
    min_volume_mm3
        26-connected tumor components smaller than this are ignored.
    radiomics
        False: tumorsynth's own size, shape and context features only (no pyradiomics needed).
    patches_per_tumor
        More than 0: also that many spherical patches per tumor, each centred on a random host
        voxel at the tumor's boundary (so it holds interior, edge and host); ``ctx_``, ``rel_``,
        ``host_``, ``tumor_`` and ``norm_`` features only.
    patch_radius_mm
        Radius (mm) of a patch.
    seed
        Seed of the patch centres (with the case id, organ and tumor index).
    norm_bin_width
        Bin width of the host-normalized tumor's radiomics, in units of the host's noise
        (0.5: about 7 HU in a liver with 15 HU of noise). 0.25 costs 10 s instead of 0.5 s on
        IRCAD 1.17's first tumor (85.6 mL), whose interior spans 132 HU.
    """

    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bin_width_hu: float = 25.0
    shell_mm: tuple[float, float] = (3.0, 10.0)
    min_volume_mm3: float = 30.0
    radiomics: bool = True
    patches_per_tumor: int = 0
    patch_radius_mm: float = 10.0
    seed: int = 0
    norm_bin_width: float = 0.5

    def __post_init__(self) -> None:
        where = "FeatureSettings"
        if len(self.spacing_mm) != 3 or not all(float(s) > 0 for s in self.spacing_mm):
            raise InputError(
                f"{where}.spacing_mm", f"expected 3 sizes > 0, found {self.spacing_mm}"
            )
        for name in ("bin_width_hu", "patch_radius_mm", "norm_bin_width"):
            if not float(getattr(self, name)) > 0:
                raise InputError(f"{where}.{name}", f"expected > 0, found {getattr(self, name)}")
        lo, hi = (float(v) for v in self.shell_mm)
        if not 0 <= lo < hi:
            raise InputError(
                f"{where}.shell_mm",
                f"expected (inner, outer) with 0 <= inner < outer, found {lo, hi}",
            )
        if float(self.min_volume_mm3) < 0 or int(self.patches_per_tumor) < 0:
            raise InputError(where, "expected min_volume_mm3 >= 0 and patches_per_tumor >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (tuples as lists), for cache keys and report.json."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TumorFeatures:
    """The features of one tumor (``patch == 0``) or of one patch of it (``patch >= 1``).

    Attributes
    ----------
    case, group, source, organ
        Case id, grouping unit for cross-validation (a scan id), ``"real"``/``"synthetic"``,
        organ name.
    tumor
        1-based component index, largest first.
    patch
        0 for the whole tumor, k >= 1 for its k-th patch.
    volume_ml, diameter_mm
        Volume and equivalent diameter of the tumor (also on its patch rows).
    center_vox
        Centroid of the tumor (of the patch's centre for a patch), voxel coordinates.
    bbox
        Voxel ``[start, stop)`` per axis of the tumor (of the patch sphere for a patch).
    values
        Feature name -> value; NaN where undefined.
    """

    case: str
    group: str
    source: str
    organ: str
    tumor: int
    patch: int
    volume_ml: float
    diameter_mm: float
    center_vox: tuple[float, float, float]
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    values: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: NaN values are written as null."""
        return {
            "case": self.case,
            "group": self.group,
            "source": self.source,
            "organ": self.organ,
            "tumor": int(self.tumor),
            "patch": int(self.patch),
            "volume_ml": float(self.volume_ml),
            "diameter_mm": float(self.diameter_mm),
            "center_vox": [float(c) for c in self.center_vox],
            "bbox": [[int(a), int(b)] for a, b in self.bbox],
            "values": {k: (None if math.isnan(v) else float(v)) for k, v in self.values.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TumorFeatures:
        """Read back :meth:`to_dict` (null -> NaN); a missing key raises KeyError."""
        centre = tuple(float(c) for c in data["center_vox"])
        bbox = tuple((int(a), int(b)) for a, b in data["bbox"])
        if len(centre) != 3 or len(bbox) != 3:
            raise ValueError("center_vox and bbox need 3 axes")
        return cls(
            case=str(data["case"]),
            group=str(data["group"]),
            source=str(data["source"]),
            organ=str(data["organ"]),
            tumor=int(data["tumor"]),
            patch=int(data["patch"]),
            volume_ml=float(data["volume_ml"]),
            diameter_mm=float(data["diameter_mm"]),
            center_vox=centre,
            bbox=bbox,
            values={
                str(k): (math.nan if v is None else float(v)) for k, v in data["values"].items()
            },
        )


@dataclass(frozen=True)
class CaseInput:
    """One case to measure: image and label files, their label map, and where it came from.

    ``group`` "" means the case id; ``organs`` () means every organ of the map with a tumor label.
    ``ignore_label`` (with its own ``ignore_label_map``) names lesions that are not to be measured:
    voxels that are tumor there are set to background first (the real tumors a synthetic case
    inherited from its source scan).
    """

    case: str
    image: Path
    label: Path
    label_map: LabelMap
    source: str
    group: str = ""
    organs: tuple[str, ...] = ()
    ignore_label: Path | None = None
    ignore_label_map: LabelMap | None = None


def tumor_organs(label_map: LabelMap) -> tuple[str, ...]:
    """Organs of ``label_map`` that have tumor ids (``"organ"`` for a generic map such as msd)."""
    named = tuple(o for o in label_map.organs if label_map.tumors.get(f"{o}_tumor"))
    if named:
        return named
    if label_map.generic_organ and label_map.generic_tumor:
        return ("organ",)
    return ()
