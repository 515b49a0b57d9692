"""The frozen spec of one tumor, and the record it becomes once rendered (and back).

A :class:`TumorSpec` is what the random side draws and the deterministic side renders; after
rendering, :meth:`TumorSpec.to_record` adds what the tumor measures (volume, equivalent diameter,
mean HU, centre in mm), and :meth:`TumorSpec.from_record` reads the spec back for replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tumorsynth import __version__
from tumorsynth._types import SizeClass, Vec3
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap
from tumorsynth.io.records import TumorRecord
from tumorsynth.organs import equivalent_diameter_mm, get_profile
from tumorsynth.shapes import ShapeSpec

__all__ = ["TumorSpec"]


@dataclass(frozen=True)
class TumorSpec:
    """Everything needed to render one tumor: shape, appearance, generator (name, version and
    the options that rebuild it), labels."""

    organ: str
    size_class: SizeClass
    generator: str
    generator_version: str
    seed: int
    shape: ShapeSpec
    appearance: Mapping[str, Any]
    organ_label: int
    tumor_label: int
    generator_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: TumorRecord, output_labels: LabelMap = OUTPUT_LABELS) -> TumorSpec:
        """The spec a record was rendered from (its organ label from ``output_labels``)."""
        return cls(
            record.organ,
            record.size_class,  # type: ignore[arg-type]
            record.generator,
            record.generator_version,
            record.seed,
            ShapeSpec.from_dict(record.shape),
            dict(record.appearance),
            output_labels.id_of(record.organ),
            record.tumor_label,
            dict(record.generator_options),
        )

    def to_record(
        self,
        *,
        case_id: str,
        tumor_index: int,
        attempts: int,
        n_voxels: int,
        tumor_mean_hu: float,
        parenchyma_mean_hu: float,
        spacing_mm: Vec3,
        affine: np.ndarray,
        label_map: LabelMap,
    ) -> TumorRecord:
        """The record of this spec as rendered.

        ``n_voxels`` tumor voxels of ``spacing_mm`` give the volume (mL) and the equivalent-sphere
        diameter (mm); ``tumor_mean_hu`` and ``parenchyma_mean_hu`` (the organ around the tumor)
        give the contrast; ``affine`` maps the centre voxel to mm.
        """
        voxel_mm3 = float(np.prod(spacing_mm))
        volume = n_voxels * (voxel_mm3 / 1000.0)
        diameter = equivalent_diameter_mm(n_voxels * voxel_mm3)
        center = np.asarray(self.shape.center_vox, dtype=float)
        center_mm = affine @ np.append(center, 1.0)
        return TumorRecord(
            case_id=case_id,
            tumor_index=tumor_index,
            organ=self.organ,
            size_class=self.size_class,
            generator=self.generator,
            generator_version=self.generator_version,
            generator_options=dict(self.generator_options),
            seed=self.seed,
            tumor_label=self.tumor_label,
            center_vox=tuple(float(c) for c in center),  # type: ignore[arg-type]
            center_mm=tuple(round(float(c), 3) for c in center_mm[:3]),  # type: ignore[arg-type]
            radii_mm=tuple(round(float(r), 3) for r in self.shape.radii_mm),  # type: ignore[arg-type]
            diameter_mm=round(diameter, 3),
            volume_ml=round(volume, 4),
            n_voxels=n_voxels,
            early_stage=get_profile(self.organ).is_early(self.size_class, diameter),
            tumor_mean_hu=round(tumor_mean_hu, 2),
            parenchyma_mean_hu=round(parenchyma_mean_hu, 2),
            contrast_hu=round(tumor_mean_hu - parenchyma_mean_hu, 2),
            exophytic=self.shape.exophytic,
            shape=self.shape.to_dict(),
            appearance=dict(self.appearance),
            attempts=attempts,
            label_map=label_map.to_json(),
            tumorsynth_version=__version__,
        )
