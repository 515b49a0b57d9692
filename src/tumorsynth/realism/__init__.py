"""Realism measurements: per-tumor features of real and synthetic lesions (size, shape, context
against the host organ, radiomics), the classifier two-sample test, the largest differences in
words, the organ-separability study, and appearance statistics for calibrating generators.
The statistics need scikit-learn (the ``realism`` extra), imported when they run."""

from tumorsynth.realism.appearance import LesionAppearance, context_features, lesion_appearance
from tumorsynth.realism.c2st import FEATURE_SETS, C2STResult, feature_sets, two_sample_test
from tumorsynth.realism.compare import FeatureDifference, compare_features, describe_differences
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
from tumorsynth.realism.separability import (
    SeparabilityResult,
    organ_separability,
    tsne_embedding,
)
from tumorsynth.realism.shape_features import shape_features

__all__ = [
    "FAMILIES",
    "FEATURE_SETS",
    "FEATURES_VERSION",
    "FEATURE_DESCRIPTIONS",
    "C2STResult",
    "CaseInput",
    "FeatureDifference",
    "FeatureSettings",
    "LesionAppearance",
    "NoTumorWarning",
    "SeparabilityResult",
    "TumorFeatures",
    "case_features",
    "compare_features",
    "context_features",
    "describe_differences",
    "extract_features",
    "feature_family",
    "feature_sets",
    "lesion_appearance",
    "organ_separability",
    "shape_features",
    "tsne_embedding",
    "two_sample_test",
]
