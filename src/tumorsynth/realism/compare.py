"""Per-feature comparison of synthetic and real tumors, and the largest differences in words.

:func:`compare_features` runs a two-sample Kolmogorov-Smirnov test per feature column and
summarizes both distributions by median and interquartile range; :func:`describe_differences`
turns the clearest differences into sentences such as "Synthetic tumors have a lower noise ratio
inside / in the host shell than real ones (median 0.91 vs 1.46; KS 0.82)."
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.realism.c2st import check_table

__all__ = ["FeatureDifference", "compare_features", "describe_differences"]

#: IQR of a normal distribution in standard deviations (turns an IQR into a robust sd).
_IQR_PER_SD = 1.349
#: Median shifts below this many robust sd are not called "higher" / "lower" ...
_SHIFT = 0.2
#: ... unless the spreads do not differ by this factor either.
_SPREAD_RATIO = 2.0
_UNITS = {"hu": "HU", "ml": "mL"}
_FAMILY_WORDS = {
    "size": "size",
    "shape": "shape",
    "ctx": "context",
    "rel": "relative to the host shell",
    "host": "host shell",
    "tumor": "tumor, HU",
    "norm": "tumor normalized by its shell",
}


@dataclass(frozen=True)
class FeatureDifference:
    """How one feature differs between synthetic and real tumors (units of the feature).

    Attributes
    ----------
    name
        Feature name.
    ks, p_value
        Two-sample Kolmogorov-Smirnov statistic (0..1) and its two-sided p-value (exact for small
        samples), not adjusted for the number of features.
    median_real, median_synthetic
        Medians of the two sets.
    iqr_real, iqr_synthetic
        25th and 75th percentiles.
    effect
        ``(median_synthetic - median_real) / spread``, signed; spread = the pooled robust standard
        deviation ``sqrt((IQR_real^2 + IQR_synth^2) / 2) / 1.349`` (the pooled sd when both IQRs
        are 0; the effect is 0 when every value is the same).
    n_real, n_synthetic
        Non-missing values per set.
    """

    name: str
    ks: float
    p_value: float
    median_real: float
    median_synthetic: float
    iqr_real: tuple[float, float]
    iqr_synthetic: tuple[float, float]
    effect: float
    n_real: int = 0
    n_synthetic: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary (tuples become lists)."""
        out = asdict(self)
        out["iqr_real"] = list(self.iqr_real)
        out["iqr_synthetic"] = list(self.iqr_synthetic)
        return out


def _one_feature(name: str, real: np.ndarray, synthetic: np.ndarray) -> FeatureDifference:
    from scipy.stats import ks_2samp

    test = ks_2samp(synthetic, real)
    q_real = np.percentile(real, [25, 50, 75])
    q_syn = np.percentile(synthetic, [25, 50, 75])
    spread = (
        math.sqrt(((q_real[2] - q_real[0]) ** 2 + (q_syn[2] - q_syn[0]) ** 2) / 2) / _IQR_PER_SD
    )
    if spread == 0:
        spread = float(np.std(np.concatenate([real, synthetic])))
    shift = float(q_syn[1] - q_real[1])
    return FeatureDifference(
        name=name,
        ks=float(test.statistic),
        p_value=float(test.pvalue),
        median_real=float(q_real[1]),
        median_synthetic=float(q_syn[1]),
        iqr_real=(float(q_real[0]), float(q_real[2])),
        iqr_synthetic=(float(q_syn[0]), float(q_syn[2])),
        effect=shift / spread if spread > 0 else 0.0,
        n_real=int(real.size),
        n_synthetic=int(synthetic.size),
    )


def compare_features(
    X: np.ndarray, names: Sequence[str], is_synthetic: np.ndarray
) -> list[FeatureDifference]:
    """Compare every feature column between synthetic and real tumors.

    Parameters
    ----------
    X
        Features, shape (n_tumors, n_features), NaN = missing (dropped per feature).
    names
        One name per column.
    is_synthetic
        Bool per tumor.

    Returns
    -------
    list of FeatureDifference
        Sorted by KS statistic, largest first (ties: larger ``|effect|`` first). Features without
        a value in one of the sets are left out.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.c_[rng.normal(size=40), rng.normal(size=40)]
    >>> X[20:, 1] += 3.0
    >>> diffs = compare_features(X, ["ctx_a", "ctx_b"], np.arange(40) >= 20)
    >>> diffs[0].name, diffs[0].ks > 0.8, diffs[0].effect > 2
    ('ctx_b', True, True)
    """
    table, names = check_table(X, names)
    y = np.asarray(is_synthetic)
    if y.shape != (table.shape[0],):
        raise InputError(
            "is_synthetic",
            f"expected {table.shape[0]} booleans (one per tumor), found shape {y.shape}",
        )
    y = y.astype(bool)
    out = []
    for j, name in enumerate(names):
        column = table[:, j]
        real = column[~y & ~np.isnan(column)]
        synthetic = column[y & ~np.isnan(column)]
        if real.size and synthetic.size:
            out.append(_one_feature(name, real, synthetic))
    out.sort(key=lambda d: (-d.ks, -abs(d.effect), d.name))
    return out


def readable_name(name: str) -> str:
    """``"tumor_glcm_JointEntropy"`` -> ``"glcm joint entropy (tumor, HU)"``."""
    family, _, rest = name.partition("_")
    if family not in _FAMILY_WORDS or not rest:
        family, rest = "", name
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", rest.replace("_", " ")).lower()
    words = " ".join(_UNITS.get(word, word) for word in spaced.split())
    return f"{words} ({_FAMILY_WORDS[family]})" if family else words


def _number(value: float) -> str:
    return f"{value:.3g}"


#: Plain readings of the features a reviewer asks about first: (synthetic lower, synthetic higher).
_PLAIN: dict[str, tuple[str, str]] = {
    "rel_noise_ratio": (
        "synthetic interiors are smoother than their host, real ones noisier",
        "synthetic interiors are noisier than their host, real ones smoother",
    ),
    "rel_spread_ratio": (
        "synthetic interiors vary less than their host, real ones more",
        "synthetic interiors vary more than their host, real ones less",
    ),
    "rel_heterogeneity_ratio": (
        "synthetic interiors are more uniform than real ones, for their host",
        "synthetic interiors are blotchier than real ones, for their host",
    ),
    "ctx_noise_in_hu": ("synthetic interiors are smoother", "synthetic interiors are noisier"),
    "ctx_spread_hu": (
        "synthetic interiors are more uniform",
        "synthetic interiors are more varied",
    ),
    "ctx_heterogeneity_hu": (
        "synthetic interiors are more uniform at the 4 mm scale",
        "synthetic interiors are blotchier at the 4 mm scale",
    ),
    "ctx_edge_width_mm": ("synthetic edges are sharper", "synthetic edges are softer"),
    "ctx_edge_sharpness": ("synthetic edges are softer", "synthetic edges are sharper"),
    "rel_rim_core_drop": (
        "synthetic centres darken less towards the core than real ones",
        "synthetic centres darken more towards the core than real ones",
    ),
    "rel_contrast_hu": (
        "synthetic tumors are darker against their host",
        "synthetic tumors are less dark against their host",
    ),
    "shape_sphericity": ("synthetic shapes are less round", "synthetic shapes are rounder"),
    "shape_solidity": (
        "synthetic shapes are more lobulated",
        "synthetic shapes are more convex, real ones lobulated",
    ),
}


def _sentence(d: FeatureDifference, what: str) -> str:
    """The sentence of :func:`_plain_sentence`, led by a plain reading for the features of
    ``_PLAIN`` when the medians differ."""
    text = _plain_sentence(d, what)
    if d.name in _PLAIN and d.median_synthetic != d.median_real:
        lower, higher = _PLAIN[d.name]
        reading = higher if d.median_synthetic > d.median_real else lower
        return f"{reading[0].upper()}{reading[1:]}: {text[0].lower()}{text[1:]}"
    return text


def _plain_sentence(d: FeatureDifference, what: str) -> str:
    """Median direction when the medians differ by at least ``_SHIFT`` robust sd; a spread
    comparison when the interquartile ranges differ by a factor of ``_SPREAD_RATIO`` or more."""
    width_syn = d.iqr_synthetic[1] - d.iqr_synthetic[0]
    width_real = d.iqr_real[1] - d.iqr_real[0]
    spread = ""
    if width_syn * _SPREAD_RATIO <= width_real:
        spread = "narrower"
    elif width_real * _SPREAD_RATIO <= width_syn:
        spread = "wider"
    medians = f"median {_number(d.median_synthetic)} vs {_number(d.median_real)}"
    ranges = (
        f"interquartile range {_number(d.iqr_synthetic[0])} to {_number(d.iqr_synthetic[1])} vs "
        f"{_number(d.iqr_real[0])} to {_number(d.iqr_real[1])}"
    )
    tail = f"KS {d.ks:.2f}"
    if abs(d.effect) >= _SHIFT or (not spread and d.median_synthetic != d.median_real):
        word = "higher" if d.median_synthetic > d.median_real else "lower"
        if spread:
            return (
                f"Synthetic tumors have a {word} {what} than real ones, with a {spread} spread "
                f"({medians}, {ranges}; {tail})."
            )
        return f"Synthetic tumors have a {word} {what} than real ones ({medians}; {tail})."
    if spread:
        return (
            f"Synthetic tumors have a {spread} spread of {what} than real ones ({ranges}; {tail})."
        )
    return f"Synthetic tumors differ from real ones in {what} ({medians}, {ranges}; {tail})."


def describe_differences(
    diffs: Sequence[FeatureDifference],
    *,
    top: int = 5,
    descriptions: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    small_n: int = 10,
    small_ks: float = 0.8,
) -> list[str]:
    """The clearest differences, in words, largest KS first.

    A feature counts as clearly different when its KS p-value, adjusted over all ``diffs`` by
    Benjamini-Hochberg (false discovery rate), is below ``alpha``. When either set has fewer than
    ``small_n`` values of the feature, no such test can succeed (two real tumors against many
    synthetic ones give p >= 0.009 before adjustment); the feature then counts when its KS
    statistic is at least ``small_ks`` (the bulk of one set lies outside the other's), a
    descriptive rule, not a test.

    Parameters
    ----------
    diffs
        From :func:`compare_features` (all features, so the adjustment sees every test).
    top
        At most this many sentences.
    descriptions
        Feature name -> words (``"noise ratio inside / in the host shell"``); other names are
        made readable from the name.
    alpha, small_n, small_ks
        The thresholds above.

    Returns
    -------
    list of str
        One sentence per feature; empty when no feature differs clearly.

    Examples
    --------
    >>> d = FeatureDifference("ctx_noise_ratio", 0.82, 1e-6, 1.46, 0.91, (1.3, 1.7),
    ...                       (0.75, 1.05), -2.1, 30, 30)
    >>> describe_differences([d], descriptions={"ctx_noise_ratio": "noise ratio inside / "
    ...                      "in the host shell"})
    ['Synthetic tumors have a lower noise ratio inside / in the host shell than real ones \
(median 0.91 vs 1.46; KS 0.82).']
    """
    if not diffs:
        return []
    from scipy.stats import false_discovery_control

    p_values = np.clip([d.p_value for d in diffs], 0.0, 1.0)
    q_values = false_discovery_control(p_values, method="bh")
    words = dict(descriptions or {})
    chosen = []
    for d, q in zip(diffs, q_values):
        small = 0 < min(d.n_real, d.n_synthetic) < small_n
        if (d.ks >= small_ks) if small else (q < alpha):
            chosen.append(d)
    chosen.sort(key=lambda d: (-d.ks, -abs(d.effect), d.name))
    return [_sentence(d, words.get(d.name, readable_name(d.name))) for d in chosen[:top]]
