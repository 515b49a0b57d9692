"""The statistics of a reader study, independent of its data: Wilson intervals of a
proportion, percentile intervals of bootstrap draws, and Fleiss' kappa (statsmodels has one, but
it is not a dependency of tumorsynth: the formula is a few lines, tested against a textbook
example). :mod:`tumorsynth.turing.score` applies them to readers' answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "NAN_PAIR",
    "Interval",
    "bootstrap_interval",
    "codes",
    "fleiss_kappa",
    "percentile_interval",
    "wilson_interval",
]

#: A 95% interval (low, high).
Interval = tuple[float, float]
#: The interval of a rate that cannot be computed.
NAN_PAIR: Interval = (math.nan, math.nan)


def wilson_interval(k: int, n: int) -> Interval:
    """95% Wilson score interval of ``k`` successes in ``n`` trials; NaNs when ``n`` is 0.

    Examples
    --------
    >>> low, high = wilson_interval(7, 10)
    >>> round(low, 3), round(high, 3)
    (0.397, 0.892)
    """
    if n <= 0:
        return NAN_PAIR
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories table of rating counts (every row sums to the same
    number of raters, at least 2); NaN when every rating falls in one category.

    With N items, n raters, n_ij raters putting item i in category j:
    p_j = sum_i n_ij / (N n); P_i = (sum_j n_ij^2 - n) / (n (n - 1));
    P = mean_i P_i (observed agreement); P_e = sum_j p_j^2 (chance agreement);
    kappa = (P - P_e) / (1 - P_e) (Fleiss 1971, Psychological Bulletin 76(5):378-382).

    Examples
    --------
    4 items, 3 raters, 2 categories: P = (1 + 1/3 + 1/3 + 1) / 4 = 2/3, P_e = 0.5, kappa = 1/3.

    >>> round(fleiss_kappa(np.array([[3, 0], [2, 1], [1, 2], [0, 3]])), 6)
    0.333333
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1:
        raise ValueError(f"expected an items x categories table, found shape {table.shape}")
    raters = table.sum(axis=1)
    n = float(raters[0])
    if n < 2 or not np.all(raters == n):
        raise ValueError("every item needs the same number of raters, at least 2")
    observed = float(np.mean((np.sum(table**2, axis=1) - n) / (n * (n - 1))))
    shares = table.sum(axis=0) / table.sum()
    chance = float(np.sum(shares**2))
    if chance >= 1.0:
        return math.nan
    return (observed - chance) / (1.0 - chance)


def codes(values: Sequence[str]) -> np.ndarray:
    _, codes = np.unique(np.asarray(values), return_inverse=True)
    return np.asarray(codes).reshape(-1)


def bootstrap_interval(draws: np.ndarray, k: int, n: int) -> Interval:
    """The percentile interval of ``draws``, or the Wilson interval of ``k`` of ``n`` when every
    answer was right (or every one wrong): resampling cannot vary such a rate, and an interval
    of width 0 would claim certainty that a finite sample never gives."""
    if n and k in (0, n):
        return wilson_interval(k, n)
    return percentile_interval(draws)


def percentile_interval(draws: np.ndarray) -> Interval:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return NAN_PAIR
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)
