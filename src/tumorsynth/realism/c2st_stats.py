"""The statistics of the two-sample test: within-fold AUC, the permutation null, the interval.

Why the AUC is computed *within* folds and then averaged, rather than on the pooled out-of-fold
scores: every fold has its own model, and scores of different models are not on one scale. Worse,
under grouped cross-validation a scan's own tumors never shape the model that scores them but do
shape the models that score every other scan, so pooled AUC is biased *below* 0.5 whenever tumors
cluster (tumors made in one draw of a generator share its case-level parameters: size, contrast).
Measured on phantoms: two seeds of one generator, 24 tumors each in 4 scans, pooled AUC 0.24
[0.19, 0.29]; the within-fold mean is 0.5 in expectation. Within-fold AUC also gives the scan
indicator exactly 0.5 (its scores are constant within a fold), its value by construction.

Why clusters in the null: permuting single tumors between real and synthetic destroys the
case-level structure that the observed labels keep, so the null comes out too narrow and the
p-value too small. Clusters (cases) move whole; see :func:`permute_labels`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "N_BOOTSTRAP",
    "bootstrap_interval",
    "fold_auc",
    "is_mixed",
    "permute_labels",
    "rank_auc",
]

#: Bootstrap resamples (of groups) for the AUC interval.
N_BOOTSTRAP = 1000


def is_mixed(y: np.ndarray, codes: np.ndarray) -> bool:
    """True when some group holds both real and synthetic tumors (a host-matched design)."""
    n_groups = int(codes.max()) + 1
    synthetic_per_group = np.bincount(codes, weights=y, minlength=n_groups)
    size = np.bincount(codes, minlength=n_groups)
    return bool(((synthetic_per_group > 0) & (synthetic_per_group < size)).any())


def permute_labels(
    y: np.ndarray,
    codes: np.ndarray,
    rng: np.random.Generator,
    clusters: np.ndarray | None = None,
) -> np.ndarray:
    """One draw of the null labelling.

    Groups of one class each: the group labels are shuffled among the groups (every group stays
    one class, group sizes kept). Mixed groups: labels are shuffled within each group (every
    group keeps its numbers of real and synthetic tumors); with ``clusters`` (integer codes, each
    cluster inside one group and of one class: the tumors of one case), whole clusters swap
    labels within their group, so tumors that share a draw of a generator stay together.
    """
    if is_mixed(y, codes):
        if clusters is None:
            positions = np.argsort(codes, kind="stable")
            shuffled = np.lexsort((rng.random(y.size), codes))
            out = np.empty_like(y)
            out[positions] = y[shuffled]
            return out
        n_clusters = int(clusters.max()) + 1
        cluster_label = np.zeros(n_clusters, dtype=y.dtype)
        cluster_label[clusters] = y
        cluster_group = np.zeros(n_clusters, dtype=np.int64)
        cluster_group[clusters] = codes
        present = np.unique(clusters)
        positions = present[np.argsort(cluster_group[present], kind="stable")]
        shuffled = present[np.lexsort((rng.random(present.size), cluster_group[present]))]
        new_label = cluster_label.copy()
        new_label[positions] = cluster_label[shuffled]
        return np.asarray(new_label[clusters])
    n_groups = int(codes.max()) + 1
    group_label = np.zeros(n_groups, dtype=y.dtype)
    group_label[codes] = y
    return np.asarray(rng.permutation(group_label)[codes])


def rank_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank sum (ties count one half), as sklearn computes it."""
    from scipy.stats import rankdata

    positive = y == 1
    n1 = int(positive.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def fold_auc(y: np.ndarray, scores: np.ndarray, folds: np.ndarray) -> float:
    """Mean ROC AUC over the folds that hold both classes (each fold's test tumors scored by its
    own model); the pooled AUC when no fold holds both.

    >>> y = np.array([0, 1, 0, 1]); folds = np.array([0, 0, 1, 1])
    >>> fold_auc(y, np.array([0.1, 0.2, 0.8, 0.9]), folds)  # pooled would be 0.75
    1.0
    """
    values = [rank_auc(y[folds == f], scores[folds == f]) for f in np.unique(folds)]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else rank_auc(y, scores)


def bootstrap_interval(
    y: np.ndarray,
    repeats: list[tuple[np.ndarray, np.ndarray]],
    codes: np.ndarray,
    rng: np.random.Generator,
    n_bootstrap: int = N_BOOTSTRAP,
) -> tuple[float, float]:
    """95% percentile interval of the repeat-averaged within-fold AUC, resampling whole units
    (groups, or the clusters inside them when the test has clusters).

    ``repeats`` holds each CV repeat's ``(scores, folds)``; a resampled unit keeps its fold.
    """
    n_groups = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_groups + 1))
    members = [order[starts[g] : starts[g + 1]] for g in range(n_groups)]
    aucs = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([members[g] for g in rng.integers(0, n_groups, n_groups)])
        values = [fold_auc(y[idx], scores[idx], folds[idx]) for scores, folds in repeats]
        value = float(np.mean(values))
        if math.isfinite(value):
            aucs.append(value)
    if not aucs:
        return math.nan, math.nan
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)
