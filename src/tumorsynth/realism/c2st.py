"""Classifier two-sample test (C2ST): can a classifier tell synthetic tumors from real ones?

A table of per-tumor features (one row per tumor, NaN allowed) is split into feature sets by the
family prefix of each name (``size_``, ``shape_``, ``ctx_``, ``rel_``, ``host_``, ``tumor_``,
``norm_``). For each set and classifier the test reports the out-of-fold ROC AUC of "synthetic vs
real" under cross-validation grouped by scan, a 95% interval (bootstrap over groups) and a p-value
against a label-permutation null. AUC 0.5 means the classifier cannot tell the two apart; 1.0
means it always can.

Design choices a reviewer should know:

- Preprocessing lives inside the cross-validated pipeline (median imputation, dropping columns
  that are constant in the training fold, standardization), so nothing is fitted on a test fold.
  Columns that are NaN for every tumor of the table are dropped up front.
- Logistic regression: L2 penalty, ``C = 0.1`` (strong shrinkage: there are usually more features
  than tumors), balanced class weights, liblinear solver. Random forest: ``FOREST_TREES`` trees,
  balanced class weights, ``sqrt`` features per split, fixed seeds.
- Cross-validation: ``StratifiedGroupKFold`` on the groups (tumors of one scan never on both
  sides), repeated with different shuffles. With fewer groups per class than folds, there are as
  many folds as the smaller class has groups (at least 2).
- The AUC is computed within each fold (that fold's model scores its test tumors), averaged over
  the folds holding both classes, then over the repeats (:mod:`~tumorsynth.realism.c2st_stats`
  says why pooling the scores of different fold models is biased below 0.5). The interval
  resamples whole groups. ``oof_score`` (scores averaged over repeats) serves the ROC figure and
  the montage.
- Null: labels are permuted between whole groups when every group holds one class (group sizes
  kept), or within each group when some group holds both (host-matched designs), moving whole
  ``clusters`` (cases) when given. Each null draw runs *one* cross-validation repeat; the
  observed statistic averages several, so the p-value errs on the conservative side.
- Cost: ``(n_repeats + n_permutations) x n_splits`` fits per set and classifier. With the
  defaults (5 x 5 folds, 50 permutations, 100 trees), 7 sets x 2 classifiers on 100 tumors x
  500 features (20 scans) took 71 s on 2 cores (about 170 CPU-s; the forest 90%: about 1 ms per
  tree). 100 permutations would about double it.
- The ``scan_indicator`` set is a one-hot encoding of the groups. Under grouped CV a scan seen in
  testing was never seen in training, so this baseline carries no tumor information by
  construction: its scores are constant within a fold and its within-fold AUC is 0.5. It stays in
  the table as the reference for "the classifier only recognizes scans"; it has no p-value and
  skips the null draws. The ``host_only`` set (the parenchyma shell alone) is the informative
  baseline: well above 0.5 means real and synthetic tumors sit in different hosts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tumorsynth.errors import InputError, TumorsynthError
from tumorsynth.realism.c2st_stats import (
    bootstrap_interval,
    fold_auc,
    is_mixed,
    permute_labels,
    rank_auc,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "FEATURE_SETS",
    "C2STResult",
    "feature_sets",
    "is_mixed",
    "permute_labels",
    "rank_auc",
    "two_sample_test",
]

FEATURE_SETS: tuple[str, ...] = (
    "all",
    "appearance",
    "host_normalized",
    "context",
    "shape",
    "host_only",
    "scan_indicator",
)
SCAN_INDICATOR = "scan_indicator"
_FAMILIES: dict[str, tuple[str, ...]] = {
    "all": ("size", "shape", "ctx", "rel", "tumor", "norm"),
    "appearance": ("ctx", "rel", "tumor", "norm"),
    "host_normalized": ("rel", "norm"),
    "context": ("ctx", "rel"),
    "shape": ("shape",),
    "host_only": ("host",),
    SCAN_INDICATOR: (),
}
CLASSIFIERS = ("logistic", "forest")
#: Inverse L2 strength of the logistic regression (on standardized features).
LOGISTIC_C = 0.1
#: Trees per random forest (the cost of the forest grows linearly with it).
FOREST_TREES = 100
_TOP = 10
_CHANCE = 0.5
# One CV repeat's input (labels, CV seed, model seed, keep importances) and output (out-of-fold
# scores, fold of each tumor, importances per fit, notes).
_Draw = tuple[np.ndarray, int, int, bool]
_Outcome = tuple[np.ndarray, np.ndarray, list[dict[str, float]], set[str]]


@dataclass(frozen=True)
class _Setup:
    classifier: str
    n_splits: int
    n_trees: int


def require_sklearn() -> None:
    """Raise a clear error when scikit-learn (the ``realism`` extra) is missing."""
    try:
        import sklearn  # noqa: F401  (optional extra tumorsynth[realism])
    except ImportError as exc:
        raise TumorsynthError(
            "tumorsynth.realism",
            "the realism statistics (two-sample test, separability, t-SNE) need scikit-learn, "
            "which is not installed",
            fix='pip install "tumorsynth[realism]"',
        ) from exc


def feature_sets(names: Sequence[str]) -> dict[str, list[str]]:
    """Group feature names into the standard feature sets by their family prefix.

    ``all`` = size + shape + ctx + rel + tumor + norm (never ``host_``); ``appearance`` = ctx +
    rel + tumor + norm; ``host_normalized`` = rel + norm; ``context`` = ctx + rel; ``shape``;
    ``host_only`` = host; ``scan_indicator`` = ``[]`` (built from the groups). Sets without
    members are left out, except ``scan_indicator``.

    Examples
    --------
    >>> feature_sets(["size_volume_ml", "ctx_contrast_hu", "host_firstorder_Mean"])
    {'all': ['size_volume_ml', 'ctx_contrast_hu'], 'appearance': ['ctx_contrast_hu'], \
'context': ['ctx_contrast_hu'], 'host_only': ['host_firstorder_Mean'], 'scan_indicator': []}
    """
    out: dict[str, list[str]] = {}
    for set_name in FEATURE_SETS:
        members = [n for n in names if n.split("_", 1)[0] in _FAMILIES[set_name]]
        if members or set_name == SCAN_INDICATOR:
            out[set_name] = members
    return out


@dataclass(frozen=True)
class C2STResult:
    """One feature set x classifier of the two-sample test.

    Attributes
    ----------
    feature_set, classifier
        Names (classifier ``"logistic"`` or ``"forest"``).
    n_features
        Columns used (after dropping all-NaN ones; the number of groups for ``scan_indicator``).
    n_real, n_synthetic, n_groups
        Tumors per class and distinct groups (scans).
    auc
        Out-of-fold ROC AUC within folds, averaged over folds and CV repeats.
    auc_low, auc_high
        95% percentile interval from a bootstrap over groups (each keeps its folds).
    p_value
        ``(1 + #{null AUC >= auc}) / (1 + n_permutations)``, each null draw one CV repeat. NaN
        for the scan indicator, as are ``null_auc_mean`` and ``null_auc_95``.
    null_auc_mean, null_auc_95
        Mean and 95th percentile of the permutation null.
    top_features
        Up to 10 ``(name, importance)`` pairs, largest first: for the logistic regression the
        coefficient on standardized features averaged over the CV fits, *signed* (positive: larger
        values look synthetic), ranked by magnitude; for the forest the mean impurity importance.
    oof_score
        Per-tumor P(synthetic), out-of-fold, averaged over the repeats (input order).
    note
        Caveats (fewer folds than asked, the scan indicator's construction, fallbacks).
    """

    feature_set: str
    classifier: str
    n_features: int
    n_real: int
    n_synthetic: int
    n_groups: int
    auc: float
    auc_low: float
    auc_high: float
    p_value: float
    null_auc_mean: float
    null_auc_95: float
    top_features: tuple[tuple[str, float], ...]
    oof_score: tuple[float, ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (NaN becomes ``None``, tuples become lists)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = _finite_or_none(value)
        out["top_features"] = [[name, _finite_or_none(v)] for name, v in self.top_features]
        out["oof_score"] = [_finite_or_none(v) for v in self.oof_score]
        return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def check_table(
    X: np.ndarray, names: Sequence[str], where: str = "features"
) -> tuple[np.ndarray, list[str]]:
    """``X`` as a 2D float array whose columns match ``names``; InputError otherwise."""
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(
            where,
            f"expected a 2D table (tumors, features), found shape {array.shape}",
            fix="stack one row per tumor",
        )
    names = [str(n) for n in names]
    if len(names) != array.shape[1]:
        raise InputError(
            where,
            f"{len(names)} feature names for {array.shape[1]} columns",
            fix="pass one name per column",
        )
    if np.isinf(array).any():
        raise InputError(where, "infinite values found", fix="replace them by NaN (missing)")
    return array, names


def _labels_and_groups(
    n: int, is_synthetic: np.ndarray, groups: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = np.asarray(is_synthetic)
    if y.shape != (n,) or not (y.dtype == bool or np.isin(y, (0, 1)).all()):
        raise InputError(
            "is_synthetic",
            f"expected {n} booleans (one per tumor), found shape {y.shape}, dtype {y.dtype}",
        )
    group_array = np.asarray([str(g) for g in groups])
    if group_array.shape != (n,):
        raise InputError(
            "groups", f"expected {n} group names (one per tumor), found {group_array.shape[0]}"
        )
    levels, codes = np.unique(group_array, return_inverse=True)
    return y.astype(np.int64), codes.astype(np.int64), [str(v) for v in levels]


def _cluster_codes(
    clusters: Sequence[str] | None, y: np.ndarray, codes: np.ndarray
) -> np.ndarray | None:
    if clusters is None:
        return None
    array = np.asarray([str(c) for c in clusters])
    if array.shape != y.shape:
        raise InputError(
            "clusters", f"expected {y.size} cluster names (one per tumor), found {array.size}"
        )
    _, cluster = np.unique(array, return_inverse=True)
    for c in np.unique(cluster):
        inside = cluster == c
        if np.unique(codes[inside]).size > 1 or np.unique(y[inside]).size > 1:
            raise InputError(
                "clusters",
                f"cluster {array[inside][0]!r} spans several groups or both classes",
                fix="give each case its own cluster name",
            )
    return cluster.astype(np.int64)


def _effective_splits(y: np.ndarray, codes: np.ndarray, n_splits: int) -> tuple[int, str]:
    per_class = [np.unique(codes[y == c]).size for c in (0, 1)]
    if min(per_class) < 2:
        raise InputError(
            "groups",
            f"the two-sample test needs at least 2 groups (scans) holding real tumors and 2 "
            f"holding synthetic ones; found {per_class[0]} and {per_class[1]}",
            fix="add scans, or when all tumors come from one scan use one group per tumor",
        )
    k = min(n_splits, *per_class)
    note = (
        f"{min(per_class)} groups in the smaller class: {k}-fold CV instead of {n_splits}"
        if k < n_splits
        else ""
    )
    return k, note


def build_pipeline(estimator: Any) -> Pipeline:
    """Median imputation -> drop constant columns -> standardization -> ``estimator``."""
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("drop_constant", VarianceThreshold(0.0)),
            ("scale", StandardScaler()),
            ("model", estimator),
        ]
    )


def _classifier(name: str, seed: int, dual: bool, n_trees: int) -> Any:
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(
            C=LOGISTIC_C,
            class_weight="balanced",
            solver="liblinear",
            dual=dual,
            max_iter=1000,
            random_state=seed,
        )
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=n_trees, class_weight="balanced", random_state=seed, n_jobs=1
    )


def _importance(model: Pipeline, names: np.ndarray, classifier: str) -> dict[str, float]:
    kept = model[:-1].get_feature_names_out(names)
    estimator = model[-1]
    values = estimator.coef_[0] if classifier == "logistic" else estimator.feature_importances_
    return {str(k): float(v) for k, v in zip(kept, values)}


def _one_repeat(
    X: np.ndarray,
    names: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    setup: _Setup,
    cv_seed: int,
    model_seed: int,
    with_importance: bool,
) -> _Outcome:
    """Out-of-fold P(synthetic) of one grouped CV repeat; importances per fit when asked."""
    from sklearn.model_selection import StratifiedGroupKFold

    scores = np.full(y.size, _CHANCE)
    fold_of = np.zeros(y.size, dtype=np.int64)
    importances: list[dict[str, float]] = []
    notes: set[str] = set()
    classifier = setup.classifier
    folds = StratifiedGroupKFold(n_splits=setup.n_splits, shuffle=True, random_state=cv_seed)
    for fold, (train, test) in enumerate(folds.split(X, y, codes)):
        fold_of[test] = fold
        if np.unique(y[train]).size < 2:
            notes.add("a training fold held one class: its test tumors scored 0.5")
            continue
        model = build_pipeline(
            _classifier(classifier, model_seed, X.shape[1] > train.size, setup.n_trees)
        )
        try:
            model.fit(X[train], y[train])
        except ValueError as error:
            if "variance threshold" not in str(error):
                raise
            notes.add("every feature was constant in a training fold: its test tumors scored 0.5")
            continue
        scores[test] = model.predict_proba(X[test])[:, 1]
        if with_importance:
            importances.append(_importance(model, names, classifier))
    return scores, fold_of, importances, notes


def _run_chunk(
    X: np.ndarray, names: np.ndarray, codes: np.ndarray, setup: _Setup, draws: list[_Draw]
) -> list[_Outcome]:
    return [
        _one_repeat(X, names, y, codes, setup, cv_seed, model_seed, imp)
        for y, cv_seed, model_seed, imp in draws
    ]


def _top_features(importances: list[dict[str, float]]) -> tuple[tuple[str, float], ...]:
    if not importances:
        return ()
    total: dict[str, float] = {}
    for fit in importances:
        for name, value in fit.items():
            total[name] = total.get(name, 0.0) + value
    mean = {name: value / len(importances) for name, value in total.items()}
    ranked = sorted(mean.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:_TOP]
    return tuple((name, round(value, 6)) for name, value in ranked)


def _set_columns(
    X: np.ndarray,
    names: list[str],
    codes: np.ndarray,
    levels: list[str],
    set_name: str,
    members: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    if set_name == SCAN_INDICATOR:
        onehot = np.zeros((codes.size, len(levels)))
        onehot[np.arange(codes.size), codes] = 1.0
        return onehot, np.asarray([f"scan={level}" for level in levels])
    index = {name: i for i, name in enumerate(names)}
    cols = [index[m] for m in members]
    sub = X[:, cols]
    keep = ~np.isnan(sub).all(axis=0)
    return sub[:, keep], np.asarray(members)[keep]


def two_sample_test(
    X: np.ndarray,
    names: Sequence[str],
    is_synthetic: np.ndarray,
    groups: Sequence[str],
    *,
    sets: Mapping[str, Sequence[str]] | None = None,
    classifiers: Sequence[str] = CLASSIFIERS,
    n_splits: int = 5,
    n_repeats: int = 5,
    n_permutations: int = 50,
    seed: int = 0,
    progress: bool = False,
    n_jobs: int = -1,
    n_trees: int = FOREST_TREES,
    clusters: Sequence[str] | None = None,
) -> list[C2STResult]:
    """Classifier two-sample test of synthetic against real tumors, per feature set.

    Parameters
    ----------
    X
        Features, shape (n_tumors, n_features), NaN = missing.
    names
        One name per column, ``<family>_<name>``.
    is_synthetic
        Bool per tumor (True = synthetic).
    groups
        Grouping unit per tumor (scan id; tumor id when all come from one scan).
    sets
        Feature set name -> column names; default :func:`feature_sets` of ``names``. A set named
        ``"scan_indicator"`` is the one-hot encoding of ``groups`` whatever its list holds.
    classifiers
        ``"logistic"`` and/or ``"forest"``.
    n_splits, n_repeats
        Grouped folds and repeats of the observed CV. Each null draw runs one repeat.
    n_permutations
        Draws of the label-permutation null (the smallest attainable p is 1/(1+n)).
    seed
        Seeds the CV shuffles, the models, the permutations and the bootstrap. The same splits
        and permutations serve every set and classifier (paired comparisons).
    progress
        Show a progress bar over the set x classifier pairs.
    n_jobs
        Worker processes (joblib; -1 = all cores). Results do not depend on it.
    n_trees
        Trees per random forest (the forest's cost grows linearly with it).
    clusters
        Optional unit per tumor that the permutation null moves whole in host-matched designs:
        the case (tumors made in one draw of a generator share its case-level parameters).
        Each cluster must lie in one group and hold one class. ``None``: every tumor alone.

    Returns
    -------
    list of C2STResult
        One per set x classifier, in the order of ``sets`` then ``classifiers``. Sets without a
        usable column are skipped with a warning.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3))
    >>> X[20:, 0] += 3.0  # synthetic tumors are brighter
    >>> res = two_sample_test(X, ["ctx_a", "ctx_b", "ctx_c"], np.arange(40) >= 20,
    ...     [f"scan{i}" for i in range(40)], sets={"context": ["ctx_a", "ctx_b", "ctx_c"]},
    ...     classifiers=("logistic",), n_permutations=20, n_jobs=1)
    >>> res[0].auc > 0.9, res[0].p_value < 0.1, res[0].top_features[0][0]
    (True, True, 'ctx_a')
    """
    require_sklearn()
    table, names = check_table(X, names)
    y, codes, levels = _labels_and_groups(table.shape[0], is_synthetic, groups)
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown:
        raise InputError("classifiers", f"unknown {unknown}; expected some of {CLASSIFIERS}")
    if n_splits < 2 or n_repeats < 1 or n_permutations < 1 or n_trees < 1:
        raise InputError(
            "two_sample_test",
            "expected n_splits >= 2, n_repeats >= 1, n_permutations >= 1, n_trees >= 1; found "
            f"{n_splits}, {n_repeats}, {n_permutations}, {n_trees}",
        )
    k, split_note = _effective_splits(y, codes, n_splits)
    mixed = is_mixed(y, codes)
    cluster_codes = _cluster_codes(clusters, y, codes)
    chosen = dict(feature_sets(names) if sets is None else sets)
    known = set(names)
    for set_name, members in chosen.items():
        unknown_names = [m for m in members if m not in known]
        if unknown_names and set_name != SCAN_INDICATOR:
            raise InputError(
                f"sets[{set_name!r}]",
                f"{len(unknown_names)} names are not columns of the table, e.g. "
                f"{unknown_names[:3]}",
                fix="use names from the feature table",
            )

    rng = np.random.default_rng(seed)
    cv_seeds = [int(s) for s in rng.integers(0, 2**31 - 1, n_repeats + n_permutations)]
    model_seeds = [int(s) for s in rng.integers(0, 2**31 - 1, n_repeats + n_permutations)]
    null_labels = [permute_labels(y, codes, rng, cluster_codes) for _ in range(n_permutations)]
    boot_seed = int(rng.integers(0, 2**31 - 1))
    labels = [y] * n_repeats + null_labels
    n_real, n_synthetic = int((y == 0).sum()), int(y.sum())

    pairs = [(s, c) for s in chosen for c in classifiers]
    from tqdm import tqdm

    results = []
    for set_name, classifier in tqdm(pairs, desc="two-sample test", disable=not progress):
        cols, col_names = _set_columns(table, names, codes, levels, set_name, chosen[set_name])
        if cols.shape[1] == 0 or not (np.nanstd(cols, axis=0) > 0).any():
            warnings.warn(
                f"feature set {set_name!r}: no column with values that vary; skipped",
                stacklevel=2,
            )
            continue
        # The scan indicator's scores are fold-level artifacts: no permutation null for it.
        n_draws = n_repeats if set_name == SCAN_INDICATOR else n_repeats + n_permutations
        draws = [(labels[i], cv_seeds[i], model_seeds[i], i < n_repeats) for i in range(n_draws)]
        setup = _Setup(classifier, k, n_trees)
        outcome = _run_parallel(cols, col_names, codes, setup, draws, n_jobs)
        observed = outcome[:n_repeats]
        oof = np.mean([scores for scores, _, _, _ in observed], axis=0)
        per_repeat = [(scores, folds) for scores, folds, _, _ in observed]
        # Within-fold AUCs, averaged over folds then repeats (c2st_stats: pooled scores of
        # different fold models are biased below 0.5); each null draw is one repeat.
        auc = float(np.mean([fold_auc(y, scores, folds) for scores, folds in per_repeat]))
        null = np.array(
            [
                fold_auc(lab, scores, folds)
                for lab, (scores, folds, _, _) in zip(null_labels, outcome[n_repeats:])
            ]
        )
        p_value = (1 + np.sum(null >= auc - 1e-12)) / (1 + null.size) if null.size else math.nan
        units = codes if cluster_codes is None else cluster_codes
        low, high = bootstrap_interval(y, per_repeat, units, np.random.default_rng(boot_seed))
        notes = [split_note] if split_note else []
        if set_name == SCAN_INDICATOR:
            notes.append(
                "scan indicator: under grouped CV test scans are never seen in training, so "
                "scores are constant within a fold (AUC 0.5 by construction); compare the "
                "host_only set to see whether the hosts differ"
            )
        if mixed:
            notes.append("host-matched groups: null permutes labels within each group")
        notes.extend(sorted(set().union(*(n for _, _, _, n in outcome))))
        results.append(
            C2STResult(
                feature_set=set_name,
                classifier=classifier,
                n_features=int(cols.shape[1]),
                n_real=n_real,
                n_synthetic=n_synthetic,
                n_groups=len(levels),
                auc=auc,
                auc_low=low,
                auc_high=high,
                p_value=float(p_value),
                null_auc_mean=float(null.mean()) if null.size else math.nan,
                null_auc_95=float(np.percentile(null, 95)) if null.size else math.nan,
                top_features=_top_features([d for _, _, imp, _ in observed for d in imp]),
                oof_score=tuple(float(v) for v in oof),
                note="; ".join(notes),
            )
        )
    return results


def _run_parallel(
    X: np.ndarray,
    names: np.ndarray,
    codes: np.ndarray,
    setup: _Setup,
    draws: list[_Draw],
    n_jobs: int,
) -> list[_Outcome]:
    """Run the draws in chunks over ``n_jobs`` processes; the order of the results is kept."""
    from joblib import Parallel, cpu_count, delayed

    workers = cpu_count() if n_jobs < 0 else max(1, n_jobs)
    if workers == 1:
        return _run_chunk(X, names, codes, setup, draws)
    size = max(1, math.ceil(len(draws) / (4 * workers)))
    chunks = [draws[i : i + size] for i in range(0, len(draws), size)]
    parts = Parallel(n_jobs=workers)(
        delayed(_run_chunk)(X, names, codes, setup, chunk) for chunk in chunks
    )
    return [item for part in parts for item in part]
