"""Input and output: NIfTI/DICOM volumes, label-map presets, dataset layouts, manifests."""

from tumorsynth.io.atomic import append_line_durably, atomic_path, ensure_writable_dir
from tumorsynth.io.label_maps import OUTPUT_LABELS, PRESETS, LabelMap, resolve_label_map
from tumorsynth.io.nifti import (
    CTIntensityWarning,
    Volume,
    check_same_grid,
    load_image,
    load_label,
    load_volume,
    save_volume,
    spacing_from_affine,
)

__all__ = [
    "OUTPUT_LABELS",
    "PRESETS",
    "CTIntensityWarning",
    "LabelMap",
    "Volume",
    "append_line_durably",
    "atomic_path",
    "check_same_grid",
    "ensure_writable_dir",
    "load_image",
    "load_label",
    "load_volume",
    "resolve_label_map",
    "save_volume",
    "spacing_from_affine",
]
