"""Classifier two-sample test: null near 0.5, clear differences near 1, grouping respected."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from shared_data import require_module

from tumorsynth.errors import InputError, TumorsynthError
from tumorsynth.realism import c2st
from tumorsynth.realism.c2st import (
    FEATURE_SETS,
    feature_sets,
    is_mixed,
    permute_labels,
    rank_auc,
    two_sample_test,
)

require_module("sklearn")

N_PERM = 19  # smallest attainable p = 1 / 20


def gaussian_table(shift: float = 0.0, n_shifted: int = 3, seed: int = 0):
    """60 real + 60 synthetic tumors in 20 scans (6 tumors each, one class per scan)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 12))
    y = np.arange(120) >= 60
    X[y, :n_shifted] += shift
    groups = [f"scan{i // 6}" for i in range(120)]
    names = [f"ctx_f{i}" for i in range(12)]
    return X, names, y, groups


def run(X, names, y, groups, **kw):
    options = dict(
        sets={"context": names},
        n_splits=5,
        n_repeats=2,
        n_permutations=N_PERM,
        n_jobs=1,
        seed=0,
        n_trees=30,  # fewer than the default keeps the tests fast; the procedure is the same
    )
    options.update(kw)
    return two_sample_test(X, names, y, groups, **options)


def test_feature_sets_follow_families():
    names = [
        "size_volume_ml",
        "shape_sphericity",
        "ctx_contrast_hu",
        "rel_noise_ratio",
        "host_firstorder_Mean",
        "tumor_glcm_Contrast",
        "norm_glcm_Contrast",
    ]
    sets = feature_sets(names)
    assert list(sets) == list(FEATURE_SETS)
    assert "host_firstorder_Mean" not in sets["all"] and len(sets["all"]) == 6
    assert sets["appearance"] == [
        "ctx_contrast_hu",
        "rel_noise_ratio",
        "tumor_glcm_Contrast",
        "norm_glcm_Contrast",
    ]
    assert sets["host_normalized"] == ["rel_noise_ratio", "norm_glcm_Contrast"]
    assert sets["context"] == ["ctx_contrast_hu", "rel_noise_ratio"]
    assert sets["shape"] == ["shape_sphericity"]
    assert sets["host_only"] == ["host_firstorder_Mean"]
    assert sets["scan_indicator"] == []
    only_ctx = feature_sets(["ctx_a"])
    assert set(only_ctx) == {"all", "appearance", "context", "scan_indicator"}


def test_same_distribution_is_near_chance():
    results = run(*gaussian_table(shift=0.0))
    assert [r.classifier for r in results] == ["logistic", "forest"]
    for r in results:
        assert abs(r.auc - 0.5) < 0.12, r
        assert r.p_value > 0.05, r
        assert r.auc_low < 0.5 < r.auc_high
        assert (r.n_real, r.n_synthetic, r.n_groups, r.n_features) == (60, 60, 20, 12)


def test_clearly_different_sets_are_told_apart():
    results = run(*gaussian_table(shift=2.0))
    for r in results:
        assert r.auc > 0.95, r
        assert r.p_value <= 1.5 / (N_PERM + 1), r
        assert r.auc_low > 0.85
        assert r.null_auc_95 < 0.75
        # the shifted features lead the importance ranking
        assert {name for name, _ in r.top_features[:3]} == {"ctx_f0", "ctx_f1", "ctx_f2"}
    logistic = results[0]
    assert all(value > 0 for _, value in logistic.top_features[:3])  # larger looks synthetic
    scores = np.asarray(logistic.oof_score)
    assert scores[60:].mean() > scores[:60].mean() + 0.3


def test_same_seed_same_result_and_jobs_do_not_matter():
    table = gaussian_table(shift=1.0)
    quick = dict(classifiers=("forest",), n_permutations=3, n_repeats=1, n_trees=10)
    first = run(*table, **quick)
    again = run(*table, **quick)
    parallel = run(*table, **quick, n_jobs=2)
    assert first == again == parallel
    other = run(*table, **quick, seed=1)
    assert other[0].oof_score != first[0].oof_score


def test_tumors_of_one_scan_never_on_both_sides():
    # Each scan has its own strong offset and one class; the classes do not differ otherwise.
    # A classifier that sees a scan in training recognizes its tumors; grouped CV must not.
    rng = np.random.default_rng(3)
    scan = np.repeat(np.arange(20), 6)
    X = rng.normal(0, 3, size=(20, 12))[scan] + rng.normal(0, 0.3, size=(120, 12))
    y = scan >= 10
    groups = [f"scan{s}" for s in scan]
    names = [f"ctx_f{i}" for i in range(12)]
    grouped = run(X, names, y, groups, n_permutations=3)
    for r in grouped:
        assert r.auc < 0.75, r

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    naive = cross_val_predict(
        c2st.build_pipeline(RandomForestClassifier(30, random_state=0)),
        X,
        y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        method="predict_proba",
    )[:, 1]
    assert roc_auc_score(y, naive) > 0.9  # the leak the grouped CV avoids


def test_folds_keep_groups_apart(monkeypatch: pytest.MonkeyPatch):
    from sklearn import model_selection

    seen = []
    original = model_selection.StratifiedGroupKFold.split

    def recording_split(self, X, y, groups):
        for train, test in original(self, X, y, groups):
            seen.append((set(groups[train]), set(groups[test])))
            yield train, test

    monkeypatch.setattr(model_selection.StratifiedGroupKFold, "split", recording_split)
    run(*gaussian_table(), classifiers=("logistic",), n_permutations=3)
    assert len(seen) == 5 * (2 + 3)
    assert all(not (train & test) for train, test in seen)


def test_permutation_between_pure_groups_keeps_groups_whole():
    codes = np.repeat(np.arange(8), [1, 2, 3, 4, 1, 2, 3, 4])
    y = (codes >= 4).astype(np.int64)
    assert not is_mixed(y, codes)
    rng = np.random.default_rng(0)
    changed = False
    for _ in range(20):
        perm = permute_labels(y, codes, rng)
        per_group = [set(perm[codes == g]) for g in range(8)]
        assert all(len(s) == 1 for s in per_group)  # every group one class
        assert sum(s == {1} for s in per_group) == 4  # as many synthetic groups as before
        changed |= not np.array_equal(perm, y)
    assert changed


def test_permutation_within_mixed_groups_keeps_group_counts(monkeypatch: pytest.MonkeyPatch):
    # Host-matched: every scan holds 3 real and 3 synthetic tumors.
    X, names, _, _ = gaussian_table()
    codes = np.repeat(np.arange(20), 6)
    y = np.tile([0, 0, 0, 1, 1, 1], 20).astype(bool)
    assert is_mixed(y.astype(np.int64), codes)
    drawn = []

    def recording(labels, group_codes, rng, clusters=None):
        out = permute_labels(labels, group_codes, rng, clusters)
        drawn.append(out)
        return out

    monkeypatch.setattr(c2st, "permute_labels", recording)
    result = run(X, names, y, [f"s{c}" for c in codes], classifiers=("logistic",))
    assert len(drawn) == N_PERM
    for perm in drawn:
        assert (np.bincount(codes, weights=perm) == 3).all()
    assert any(not np.array_equal(perm, y) for perm in drawn)
    assert "within each group" in result[0].note


def test_scan_indicator_is_a_chance_baseline():
    X, names, y, groups = gaussian_table(shift=2.0)
    results = run(X, names, y, groups, sets={"scan_indicator": []}, n_permutations=9)
    for r in results:
        assert r.feature_set == "scan_indicator"
        assert r.n_features == 20
        assert r.auc == 0.5  # constant scores within every fold
        assert np.isnan(r.p_value) and np.isnan(r.null_auc_mean)
        assert "AUC 0.5 by construction" in r.note
        assert r.to_dict()["p_value"] is None


def test_fewer_groups_than_folds_and_too_few_groups():
    X, names, y, _ = gaussian_table()
    three = [f"g{(i // 20) % 3}" + ("s" if y[i] else "r") for i in range(120)]
    results = run(X, names, y, three, classifiers=("logistic",), n_permutations=3)
    assert "3-fold CV instead of 5" in results[0].note
    one_real_scan = ["real"] * 60 + [f"s{i}" for i in range(60)]
    with pytest.raises(InputError, match="at least 2 groups"):
        run(X, names, y, one_real_scan)


def test_missing_columns_are_dropped_and_empty_sets_skipped():
    X, names, y, groups = gaussian_table(shift=2.0)
    X[:, 5] = np.nan
    X[::3, 0] = np.nan
    sets = {"context": names, "empty": ["ctx_f5"]}
    with pytest.warns(UserWarning, match="'empty'"):
        results = run(X, names, y, groups, sets=sets, classifiers=("logistic",))
    assert [r.feature_set for r in results] == ["context"]
    assert results[0].n_features == 11
    assert results[0].auc > 0.95


def test_bad_input_is_named():
    X, names, y, groups = gaussian_table()
    with pytest.raises(InputError, match="12 feature names for 13 columns"):
        run(np.c_[X, X[:, 0]], names, y, groups)
    with pytest.raises(InputError, match="is_synthetic"):
        run(X, names, y[:-1], groups)
    with pytest.raises(InputError, match="unknown"):
        run(X, names, y, groups, classifiers=("svm",))
    with pytest.raises(InputError, match="not columns"):
        run(X, names, y, groups, sets={"x": ["ctx_nope"]})


def test_result_is_json_able():
    result = run(*gaussian_table(shift=1.0), classifiers=("logistic",), n_permutations=3)[0]
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["classifier"] == "logistic"
    assert len(data["oof_score"]) == 120
    assert data["top_features"][0][0].startswith("ctx_f")


def test_rank_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    scores = rng.integers(0, 5, 50).astype(float)  # many ties
    assert rank_auc(y, scores) == pytest.approx(roc_auc_score(y, scores))


def test_missing_sklearn_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(TumorsynthError, match=r"tumorsynth\[realism\]"):
        run(*gaussian_table())


@pytest.fixture(scope="module")
def ircad_shapes_vs_ellipsoids():
    """Shape features of the real IRCAD liver tumors (26-connected components of label 2: 30)
    and of one ellipsoid per tumor (same volume, each radius x U(0.75, 1.25) as in SynTumor,
    same spacing) in 6 pseudo-scans."""
    import cc3d
    from scipy import ndimage as ndi
    from shared_data import require_data

    from tumorsynth.io import load_label
    from tumorsynth.realism.shape_features import shape_features

    folder = require_data("ircad_tumor_masks")
    rng = np.random.default_rng(0)
    rows, y, groups = [], [], []
    for path in sorted(folder.glob("*_label.nii.gz")):
        label = load_label(path)
        spacing = label.spacing_mm
        components = cc3d.connected_components(label.array == 2, connectivity=26)
        for index, box in enumerate(ndi.find_objects(components), start=1):
            grown = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in box)
            mask = components[grown] == index
            rows.append(shape_features(mask, spacing))
            y.append(False)
            groups.append(path.name.split("_label")[0])
            radius = (3 * mask.sum() * np.prod(spacing) / (4 * np.pi)) ** (1 / 3)
            radii = radius * rng.uniform(0.75, 1.25, 3)
            half = [int(np.ceil(r / s)) + 2 for r, s in zip(radii, spacing)]
            grid = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
            ellipsoid = sum((g * s / r) ** 2 for g, s, r in zip(grid, spacing, radii)) <= 1
            rows.append(shape_features(ellipsoid, spacing))
            y.append(True)
            groups.append(f"synthetic{len(rows) % 6}")
    names = [n for n in rows[0] if n.startswith("shape_")]
    X = np.array([[row[n] for n in names] for row in rows])
    return X, names, np.array(y), groups


@pytest.mark.realdata
@pytest.mark.slow
def test_real_liver_tumor_shapes_are_told_from_ellipsoids(ircad_shapes_vs_ellipsoids):
    # Real tumors are lobulated and less convex than ellipsoids (issue 10): the test must see it.
    from tumorsynth.realism.compare import compare_features, describe_differences

    X, names, y, groups = ircad_shapes_vs_ellipsoids
    assert y.sum() == (~y).sum() >= 29 and len(set(np.asarray(groups)[~y])) == 6
    result = run(X, names, y, groups, classifiers=("logistic",))[0]
    assert result.auc > 0.85 and result.p_value <= 1 / (N_PERM + 1)
    irregularity = {"shape_lobulation", "shape_solidity", "shape_surface_irregularity"}
    assert result.top_features[0][0] in irregularity | {"shape_max_diameter_ratio"}
    diffs = {d.name: d for d in compare_features(X, names, y)}
    assert diffs["shape_solidity"].median_synthetic > diffs["shape_solidity"].median_real
    sentences = describe_differences(list(diffs.values()))
    assert any("lower lobulation" in s or "higher solidity" in s for s in sentences)


def test_cluster_permutation_moves_whole_cases_within_their_scan():
    # 3 scans, each with 2 real cases and 2 synthetic cases of 3 tumors
    codes = np.repeat(np.arange(3), 12)
    clusters = np.repeat(np.arange(12), 3)
    y = np.tile(np.repeat([0, 0, 1, 1], 3), 3)
    rng = np.random.default_rng(0)
    changed = False
    for _ in range(20):
        out = permute_labels(y, codes, rng, clusters)
        for c in range(12):
            assert np.unique(out[clusters == c]).size == 1  # a case keeps one label
        for g in range(3):
            assert out[codes == g].sum() == y[codes == g].sum()  # and its scan its counts
        changed |= bool((out != y).any())
    assert changed


def test_clustered_null_data_gives_chance_on_average():
    """Tumors share strong case-level effects (as one draw of a generator makes them) and both
    sides come from one distribution: over 16 data sets the AUC averages 0.5 (pooling the scores
    of different fold models gave 0.24 [0.19, 0.29] on such phantom data), p-values are not
    small, and the cluster bootstrap's interval holds 0.5 in most of them."""
    aucs, covered, small_p = [], 0, 0
    for seed in range(16):
        rng = np.random.default_rng(seed)
        n_scans, cases, per_case = 4, 4, 3
        codes = np.repeat(np.arange(n_scans), cases * per_case)
        clusters = np.repeat(np.arange(n_scans * cases), per_case)
        y = np.tile(np.repeat([0, 0, 1, 1], per_case), n_scans)
        X = rng.normal(0, 2.0, (n_scans * cases, 6))[clusters] + rng.normal(0, 0.5, (y.size, 6))
        names = [f"ctx_f{i}" for i in range(6)]
        (r,) = run(
            X,
            names,
            y.astype(bool),
            [f"s{c}" for c in codes],
            sets={"context": names},
            classifiers=("logistic",),
            clusters=[f"c{c}" for c in clusters],
            n_permutations=19,
        )
        aucs.append(r.auc)
        covered += r.auc_low <= 0.5 <= r.auc_high
        small_p += r.p_value <= 0.05
    assert abs(np.mean(aucs) - 0.5) < 0.12, aucs  # 16 draws: standard error about 0.05
    assert covered >= 12
    assert small_p <= 3
