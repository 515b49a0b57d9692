"""Organ separability (SVM, forest, AdaBoost) and the t-SNE map."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shared_data import require_module

from tumorsynth.errors import InputError
from tumorsynth.realism import separability
from tumorsynth.realism.separability import organ_separability, tsne_embedding

require_module("sklearn")

ORGANS = ["kidney"] * 15 + ["liver"] * 15 + ["pancreas"] * 15


@pytest.fixture(autouse=True)
def small_forest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(separability, "FOREST_TREES", 30)
    monkeypatch.setattr(separability, "ADABOOST_ROUNDS", 30)


def clusters(separation: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, 6))
    centres[[0, 1, 2], [0, 1, 2]] = separation
    return rng.normal(size=(45, 6)) + np.repeat(centres, 15, axis=0)


NAMES = [f"shape_f{i}" for i in range(6)]


def test_separated_organs_are_recognized():
    results = organ_separability(clusters(8.0), NAMES, ORGANS, n_repeats=3)
    assert [r.classifier for r in results] == ["svm", "forest", "adaboost"]
    for r in results:
        assert r.organs == ("kidney", "liver", "pancreas")
        assert r.accuracy > 0.95
        assert all(v > 0.9 for v in r.recall.values())
        assert all(v > 0.9 for v in r.precision.values())
        confusion = np.asarray(r.confusion)
        assert confusion.sum() == 45 * 3
        assert (confusion.sum(axis=1) == 45).all()  # rows are the true organs
        assert np.trace(confusion) > 0.95 * confusion.sum()
        json.dumps(r.to_dict(), allow_nan=False)


def test_identical_organs_are_at_chance():
    results = organ_separability(
        clusters(0.0), NAMES, ORGANS, classifiers=("svm", "forest"), n_repeats=5
    )
    for r in results:
        assert abs(r.accuracy - 1 / 3) < 0.15, r
        assert all(abs(v - 1 / 3) < 0.25 for v in r.recall.values())
        assert r.accuracy_std > 0  # repeats differ


def test_separability_is_deterministic_and_handles_missing():
    X = clusters(8.0)
    X[::4, 0] = np.nan
    X[:, 5] = np.nan
    a = organ_separability(X, NAMES, ORGANS, classifiers=("forest",), n_repeats=2, seed=3)
    b = organ_separability(X, NAMES, ORGANS, classifiers=("forest",), n_repeats=2, seed=3)
    assert a == b
    assert a[0].accuracy > 0.9


def test_small_organ_uses_fewer_folds_and_bad_input_is_named():
    X = clusters(8.0)[:33]
    organs = ORGANS[:33]  # pancreas: 3 tumors
    result = organ_separability(X, NAMES, organs, classifiers=("svm",), n_repeats=2)
    assert result[0].recall["pancreas"] > 0.6
    with pytest.raises(InputError, match="at least 2 tumors each"):
        organ_separability(X[:31], NAMES, organs[:31])
    with pytest.raises(InputError, match="organs"):
        organ_separability(X, NAMES, organs[:-1])
    with pytest.raises(InputError, match="unknown"):
        organ_separability(X, NAMES, organs, classifiers=("logistic",))
    with pytest.raises(InputError, match="varies"):
        organ_separability(np.ones_like(X), NAMES, organs)


def test_tsne_shape_determinism_and_structure():
    X = clusters(8.0)
    X[::5, 1] = np.nan
    a = tsne_embedding(X, seed=0)
    assert a.shape == (45, 2) and a.dtype == np.float64
    assert np.array_equal(a, tsne_embedding(X, seed=0))
    # the three clusters stay apart in the map: each point's nearest neighbour is of its organ
    d = np.linalg.norm(a[:, None] - a[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    labels = np.asarray(ORGANS)
    assert (labels[d.argmin(axis=1)] == labels).mean() > 0.95
    assert tsne_embedding(X[:6], perplexity=2.0).shape == (6, 2)
    with pytest.raises(InputError, match="perplexity"):
        tsne_embedding(X[:6], perplexity=6.0)
    with pytest.raises(InputError, match="at least 4"):
        tsne_embedding(X[:3])
