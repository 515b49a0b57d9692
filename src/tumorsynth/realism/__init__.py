"""Realism measurements: per-tumor features of real and synthetic lesions (size, shape, context
against the host organ, radiomics), and appearance statistics for calibrating generators."""

from tumorsynth.realism.appearance import LesionAppearance, context_features, lesion_appearance
from tumorsynth.realism.features import (
    FAMILIES,
    FEATURE_DESCRIPTIONS,
    FEATURES_VERSION,
    CaseInput,
    FeatureSettings,
    NoTumorWarning,
    TumorFeatures,
    case_features,
    extract_features,
    feature_family,
)
from tumorsynth.realism.shape_features import shape_features

__all__ = [
    "FAMILIES",
    "FEATURES_VERSION",
    "FEATURE_DESCRIPTIONS",
    "CaseInput",
    "FeatureSettings",
    "LesionAppearance",
    "NoTumorWarning",
    "TumorFeatures",
    "case_features",
    "context_features",
    "extract_features",
    "feature_family",
    "lesion_appearance",
    "shape_features",
]
