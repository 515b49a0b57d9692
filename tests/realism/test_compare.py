"""Per-feature comparison: KS, medians, effect direction, and the differences in words."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tumorsynth.errors import InputError
from tumorsynth.realism.compare import (
    FeatureDifference,
    compare_features,
    describe_differences,
    readable_name,
)


def table(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(2 * n) >= n
    X = rng.normal(size=(2 * n, 4))
    X[y, 0] -= 2.0  # synthetic lower
    X[y, 1] += 1.0  # synthetic higher, less clearly
    X[y, 3] *= 0.2  # same median, narrower
    names = [
        "rel_noise_ratio",
        "tumor_glcm_JointEntropy",
        "ctx_contrast_hu",
        "ctx_heterogeneity_hu",
    ]
    return X, names, y


def test_compare_sorts_by_ks_and_signs_the_effect():
    X, names, y = table()
    diffs = compare_features(X, names, y)
    assert [d.name for d in diffs][:2] == ["rel_noise_ratio", "tumor_glcm_JointEntropy"]
    assert all(a.ks >= b.ks for a, b in zip(diffs, diffs[1:]))
    first = diffs[0]
    assert first.effect < -1.5 and first.median_synthetic < first.median_real
    assert first.p_value < 1e-6 and (first.n_real, first.n_synthetic) == (40, 40)
    second = diffs[1]
    assert 0.5 < second.effect < 1.6
    # an independent check of the medians and the KS statistic
    col = X[:, 0]
    assert first.median_real == pytest.approx(np.median(col[~y]))
    grid = np.sort(col)
    ecdf = lambda v: np.searchsorted(np.sort(v), grid, side="right") / v.size
    assert first.ks == pytest.approx(np.abs(ecdf(col[y]) - ecdf(col[~y])).max())
    assert json.loads(json.dumps(first.to_dict()))["iqr_real"] == list(first.iqr_real)


def test_missing_values_are_dropped_per_feature():
    X, names, y = table()
    X[:10, 0] = np.nan
    X[~y, 2] = np.nan  # no real value at all: left out
    diffs = {d.name: d for d in compare_features(X, names, y)}
    assert "ctx_contrast_hu" not in diffs
    assert diffs["rel_noise_ratio"].n_real == 30
    with pytest.raises(InputError, match="is_synthetic"):
        compare_features(X, names, y[:-1])


def test_constant_feature_has_zero_effect():
    X, names, y = table()
    X[:, 2] = 7.0
    d = {d.name: d for d in compare_features(X, names, y)}["ctx_contrast_hu"]
    assert (d.ks, d.effect) == (0.0, 0.0)


def test_sentences_say_direction_numbers_and_skip_noise():
    X, names, y = table()
    sentences = describe_differences(
        compare_features(X, names, y),
        descriptions={"rel_noise_ratio": "noise ratio inside / in the host shell"},
    )
    assert sentences[0].startswith(
        "Synthetic interiors are smoother than their host, real ones noisier: synthetic tumors "
        "have a lower noise ratio inside / in the host shell than real ones (median "
    )
    assert "KS 0." in sentences[0]
    assert "higher glcm joint entropy (tumor, HU)" in sentences[1]
    assert any("heterogeneity HU (context)" in s and "narrower spread" in s for s in sentences)
    assert not any("contrast" in s for s in sentences)  # no difference, no sentence
    assert len(describe_differences(compare_features(X, names, y), top=1)) == 1


def test_no_difference_gives_no_sentence():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 200))
    y = np.arange(200) >= 100
    names = [f"tumor_f{i}" for i in range(200)]
    # some raw p-values fall below 0.05 by chance; the FDR adjustment keeps them out
    diffs = compare_features(X, names, y)
    assert min(d.p_value for d in diffs) < 0.05
    assert describe_differences(diffs) == []
    assert describe_differences([]) == []


def test_small_samples_use_the_ks_rule():
    # two real tumors against 30 synthetic ones: no test can reach significance after adjustment
    rng = np.random.default_rng(2)
    X = rng.normal(size=(32, 2))
    X[:2, 0] = [5.0, 6.0]  # both real tumors far above every synthetic one
    y = np.arange(32) >= 2
    diffs = compare_features(X, ["ctx_noise_ratio", "ctx_other"], y)
    sentences = describe_differences(diffs)
    assert len(sentences) == 1
    assert "lower noise ratio (context)" in sentences[0] and "KS 1.00" in sentences[0]


def test_readable_names():
    assert readable_name("tumor_glcm_JointEntropy") == "glcm joint entropy (tumor, HU)"
    assert (
        readable_name("norm_firstorder_Mean") == "firstorder mean (tumor normalized by its shell)"
    )
    assert readable_name("weird") == "weird"
    assert readable_name("size_volume_ml") == "volume mL (size)"
    d = FeatureDifference("x", 0.9, 1e-9, 1.0, 1.0, (0.0, 2.0), (0.5, 1.5), 0.0, 50, 50)
    assert "narrower spread of x" in describe_differences([d])[0]
