"""Organ separability of tumors (the study of DiffTumor, section 2) and a t-SNE map.

Can a classifier tell from its features which organ a (small) tumor grew in? DiffTumor argues
that early tumors of liver, pancreas and kidney look alike, which is what lets one generator serve
several organs. :func:`organ_separability` measures it with an RBF SVM, a random forest and
AdaBoost under repeated stratified K-fold cross-validation (not grouped: the unit is the tumor),
reporting accuracy and per-organ precision and recall; :func:`tsne_embedding` gives a 2D map of
the same features. Runs on real tumors, synthetic ones, or both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.realism.c2st import build_pipeline, check_table, require_sklearn

__all__ = ["SeparabilityResult", "organ_separability", "tsne_embedding"]

SEPARABILITY_CLASSIFIERS = ("svm", "forest", "adaboost")
#: Trees of the random forest; rounds of AdaBoost (decision stumps).
FOREST_TREES = 200
ADABOOST_ROUNDS = 100


@dataclass(frozen=True)
class SeparabilityResult:
    """Organ classification by one classifier, over all CV repeats.

    Attributes
    ----------
    classifier
        ``"svm"``, ``"forest"`` or ``"adaboost"``.
    organs
        Class names, sorted; the order of ``confusion``'s rows and columns.
    accuracy, accuracy_std
        Mean and standard deviation over repeats of the out-of-fold accuracy.
    precision, recall, precision_std, recall_std
        Per organ, mean and standard deviation over repeats (0 where an organ was never predicted).
    confusion
        Counts summed over repeats: rows true organ, columns predicted organ.
    """

    classifier: str
    organs: tuple[str, ...]
    accuracy: float
    accuracy_std: float
    precision: Mapping[str, float]
    recall: Mapping[str, float]
    precision_std: Mapping[str, float]
    recall_std: Mapping[str, float]
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary."""
        return {
            "classifier": self.classifier,
            "organs": list(self.organs),
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "precision": dict(self.precision),
            "recall": dict(self.recall),
            "precision_std": dict(self.precision_std),
            "recall_std": dict(self.recall_std),
            "confusion": [list(row) for row in self.confusion],
        }


def _estimator(name: str, seed: int) -> Any:
    if name == "svm":
        from sklearn.svm import SVC

        return SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced")
    if name == "forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=FOREST_TREES, class_weight="balanced", random_state=seed, n_jobs=1
        )
    from sklearn.ensemble import AdaBoostClassifier

    return AdaBoostClassifier(n_estimators=ADABOOST_ROUNDS, random_state=seed)


def _usable_columns(X: np.ndarray, where: str) -> np.ndarray:
    keep = ~np.isnan(X).all(axis=0)
    if not keep.any() or not (np.nanstd(X[:, keep], axis=0) > 0).any():
        raise InputError(
            where,
            f"no feature column varies across the {X.shape[0]} tumors",
            fix="pass features with values (all columns are missing or constant)",
        )
    return X[:, keep]


def organ_separability(
    X: np.ndarray,
    names: Sequence[str],
    organs: Sequence[str],
    *,
    classifiers: Sequence[str] = SEPARABILITY_CLASSIFIERS,
    n_splits: int = 5,
    n_repeats: int = 10,
    seed: int = 0,
) -> list[SeparabilityResult]:
    """How well the features tell the organ of each tumor, per classifier.

    Preprocessing (median imputation, dropping constant columns, standardization) is fitted
    inside each training fold. Classifiers: RBF SVM (``C = 1``, ``gamma = "scale"``, balanced
    class weights), random forest (200 trees, balanced), AdaBoost (100 stumps). Cross-validation:
    ``RepeatedStratifiedKFold``-style, ``n_splits`` folds (fewer when the smallest organ has
    fewer tumors, at least 2) repeated ``n_repeats`` times with different shuffles.

    Parameters
    ----------
    X
        Features, shape (n_tumors, n_features), NaN = missing.
    names
        One name per column (checked against ``X``; every column is used).
    organs
        Organ per tumor (at least two organs, at least two tumors each).
    classifiers
        Some of ``"svm"``, ``"forest"``, ``"adaboost"``.
    n_splits, n_repeats, seed
        Cross-validation; ``seed`` fixes the shuffles and the models.

    Returns
    -------
    list of SeparabilityResult
        One per classifier, in the order given. Chance accuracy is about 1 / number of organs
        (for balanced organs).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 4)) + np.repeat(np.eye(3, 4) * 6, 10, axis=0)
    >>> res = organ_separability(X, list("abcd"), ["liver"] * 10 + ["kidney"] * 10
    ...                          + ["pancreas"] * 10, classifiers=("svm",), n_repeats=2)
    >>> res[0].organs, res[0].accuracy > 0.9
    (('kidney', 'liver', 'pancreas'), True)
    """
    require_sklearn()
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    table, _ = check_table(X, names)
    labels = np.asarray([str(o) for o in organs])
    if labels.shape != (table.shape[0],):
        raise InputError(
            "organs", f"expected {table.shape[0]} organ names (one per tumor), found {labels.size}"
        )
    unknown = [c for c in classifiers if c not in SEPARABILITY_CLASSIFIERS]
    if unknown:
        raise InputError(
            "classifiers", f"unknown {unknown}; expected some of {SEPARABILITY_CLASSIFIERS}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    if classes.size < 2 or counts.min() < 2:
        found = ", ".join(f"{c}: {n}" for c, n in zip(classes, counts))
        raise InputError(
            "organs",
            f"organ separability needs at least 2 organs with at least 2 tumors each; found {found}",
            fix="add tumors of the missing organs",
        )
    if n_splits < 2 or n_repeats < 1:
        raise InputError(
            "organ_separability",
            f"expected n_splits >= 2 and n_repeats >= 1, found {n_splits} and {n_repeats}",
        )
    table = _usable_columns(table, "features")
    k = min(n_splits, int(counts.min()))
    organ_names = tuple(str(c) for c in classes)
    rng = np.random.default_rng(seed)
    cv_seeds = [int(s) for s in rng.integers(0, 2**31 - 1, n_repeats)]

    results = []
    for classifier in classifiers:
        accuracy, precision, recall = [], [], []
        confusion = np.zeros((classes.size, classes.size), dtype=np.int64)
        for repeat, cv_seed in enumerate(cv_seeds):
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=cv_seed)
            model = build_pipeline(_estimator(classifier, seed + repeat))
            predicted = cross_val_predict(model, table, labels, cv=folds)
            accuracy.append(float(np.mean(predicted == labels)))
            p, r, _, _ = precision_recall_fscore_support(
                labels, predicted, labels=classes, zero_division=0
            )
            precision.append(p)
            recall.append(r)
            confusion += confusion_matrix(labels, predicted, labels=classes)
        p_all, r_all = np.asarray(precision), np.asarray(recall)
        results.append(
            SeparabilityResult(
                classifier=classifier,
                organs=organ_names,
                accuracy=float(np.mean(accuracy)),
                accuracy_std=float(np.std(accuracy)),
                precision=dict(zip(organ_names, p_all.mean(axis=0).tolist())),
                recall=dict(zip(organ_names, r_all.mean(axis=0).tolist())),
                precision_std=dict(zip(organ_names, p_all.std(axis=0).tolist())),
                recall_std=dict(zip(organ_names, r_all.std(axis=0).tolist())),
                confusion=tuple(tuple(int(v) for v in row) for row in confusion),
            )
        )
    return results


def tsne_embedding(X: np.ndarray, *, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """2D t-SNE map of the tumors (one row each) for plotting.

    Features are imputed by their median, constant and all-missing columns dropped and the rest
    standardized before :class:`sklearn.manifold.TSNE` (PCA initialization, fixed seed).

    Parameters
    ----------
    X
        Features, shape (n_tumors, n_features), NaN = missing; at least 4 tumors.
    seed
        Seed of t-SNE; the same seed gives the same map.
    perplexity
        Default ``min(30, (n_tumors - 1) / 3)``; must be below ``n_tumors``.

    Returns
    -------
    numpy.ndarray
        Shape (n_tumors, 2), float64, arbitrary units.

    Examples
    --------
    >>> tsne_embedding(np.random.default_rng(0).normal(size=(12, 5))).shape
    (12, 2)
    """
    require_sklearn()
    from sklearn.manifold import TSNE

    table = np.asarray(X, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 4:
        raise InputError(
            "features",
            f"t-SNE needs a 2D table with at least 4 tumors, found shape {table.shape}",
        )
    if np.isinf(table).any():
        raise InputError("features", "infinite values found", fix="replace them by NaN (missing)")
    n = table.shape[0]
    if perplexity is None:
        perplexity = min(30.0, (n - 1) / 3)
    if not 0 < perplexity < n or not math.isfinite(perplexity):
        raise InputError(
            "perplexity", f"expected a value in (0, {n}) for {n} tumors, found {perplexity}"
        )
    table = _usable_columns(table, "features")
    preprocess = build_pipeline("passthrough")[:-1]
    standardized = preprocess.fit_transform(table)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return np.asarray(tsne.fit_transform(standardized), dtype=np.float64)
