"""Pool per-case results into one typed summary with 95% percentile bootstrap intervals.

Every pooled statistic is a ratio of per-case sums, ``sum(numerator) / sum(denominator)``, so a
bootstrap resample of cases recomputes it exactly (lesions are pooled over the resampled cases).
Ratios with an empty denominator (e.g. specificity without controls) are NaN, and so are their
intervals.

Examples
--------
>>> from tumorsynth.evaluation.metrics import CaseEvaluation
>>> cases = [CaseEvaluation("a", 0.8, 0.9, True), CaseEvaluation("b", 1.0, 1.0, False)]
>>> summary = summarize_cases(cases, n_bootstrap=0)
>>> summary.dsc_mean.value, summary.n_controls, summary.patient_specificity.value
(0.8, 1, 1.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tumorsynth.evaluation.lesions import STRATUM_NAMES
from tumorsynth.evaluation.metrics import CaseEvaluation

__all__ = [
    "BOOTSTRAP_METHOD",
    "HEADLINE_METRICS",
    "Estimate",
    "EvaluationSummary",
    "bootstrap_weights",
    "percentile_interval",
    "summarize_cases",
]

#: How the 95% intervals are taken from the resampled statistics (recorded in report.json).
BOOTSTRAP_METHOD = "percentile"

#: The pooled statistics of :class:`EvaluationSummary`, in the order report.json lists them.
HEADLINE_METRICS: tuple[str, ...] = (
    "dsc_mean",
    "nsd_mean",
    "lesion_sensitivity",
    "early_stage_sensitivity",
    "fp_per_case",
    "patient_sensitivity",
    "patient_specificity",
)


@dataclass(frozen=True)
class Estimate:
    """A pooled statistic and its 95% bootstrap interval (NaN where it cannot be computed).

    Examples
    --------
    >>> Estimate(0.5, (0.25, 0.75)).to_dict()
    {'value': 0.5, 'ci95': [0.25, 0.75]}
    """

    value: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "ci95": list(self.ci95)}


@dataclass(frozen=True)
class EvaluationSummary:
    """What a set of cases adds up to: counts, pooled statistics with 95% intervals.

    Attributes
    ----------
    n_cases, n_tumor_cases
        All cases and those whose ground truth holds tumor (``n_controls``: the others).
    n_false_positive_cases
        Controls with predicted tumor voxels.
    n_lesions_by_stratum, n_detected_by_stratum
        Ground-truth lesions and the detected ones per equivalent-radius stratum (keys:
        :data:`~.lesions.STRATUM_NAMES`); ``n_lesions`` and ``n_detected`` are their sums.
    n_early_stage_lesions, n_early_stage_detected
        The same for early-stage lesions (equivalent diameter under 20 mm).
    dsc_median
        Median DSC over cases with tumor (NaN without them); no interval.
    dsc_mean, nsd_mean
        Mean DSC and NSD over cases with tumor.
    lesion_sensitivity, early_stage_sensitivity
        Detected / all lesions, pooled over cases; the same for early-stage lesions.
    fp_per_case
        False-positive predicted components per case.
    patient_sensitivity, patient_specificity
        Positive calls among cases with tumor; negative calls among controls.
    lesion_sensitivity_by_stratum
        Lesion sensitivity per equivalent-radius stratum.
    n_bootstrap, seed
        Bootstrap resamples over cases (0: intervals are NaN) and the seed that drew them.
    """

    n_cases: int
    n_tumor_cases: int
    n_false_positive_cases: int
    n_lesions_by_stratum: Mapping[str, int]
    n_detected_by_stratum: Mapping[str, int]
    n_early_stage_lesions: int
    n_early_stage_detected: int
    dsc_median: float
    dsc_mean: Estimate
    nsd_mean: Estimate
    lesion_sensitivity: Estimate
    early_stage_sensitivity: Estimate
    fp_per_case: Estimate
    patient_sensitivity: Estimate
    patient_specificity: Estimate
    lesion_sensitivity_by_stratum: Mapping[str, Estimate]
    n_bootstrap: int
    seed: int

    @property
    def n_controls(self) -> int:
        """Cases whose ground truth holds no tumor."""
        return self.n_cases - self.n_tumor_cases

    @property
    def n_lesions(self) -> int:
        """Ground-truth lesions over all cases (every lesion falls in one stratum)."""
        return sum(self.n_lesions_by_stratum.values())

    @property
    def n_detected(self) -> int:
        """Detected ground-truth lesions over all cases."""
        return sum(self.n_detected_by_stratum.values())

    def to_dict(self) -> dict[str, object]:
        """The ``summary`` of report.json: counts, point estimates, then ``ci95`` and
        ``bootstrap`` (NaN stays a float; the report writer turns it into null)."""
        pooled = {name: getattr(self, name) for name in HEADLINE_METRICS}
        by_stratum = self.lesion_sensitivity_by_stratum
        ci95: dict[str, object] = {name: list(e.ci95) for name, e in pooled.items()}
        ci95["lesion_sensitivity_by_stratum"] = {s: list(e.ci95) for s, e in by_stratum.items()}
        return {
            "n_cases": self.n_cases,
            "n_tumor_cases": self.n_tumor_cases,
            "n_controls": self.n_controls,
            "n_false_positive_cases": self.n_false_positive_cases,
            "n_lesions": self.n_lesions,
            "n_detected": self.n_detected,
            "n_lesions_by_stratum": dict(self.n_lesions_by_stratum),
            "n_detected_by_stratum": dict(self.n_detected_by_stratum),
            "n_early_stage_lesions": self.n_early_stage_lesions,
            "n_early_stage_detected": self.n_early_stage_detected,
            "dsc_median": self.dsc_median,
            **{name: e.value for name, e in pooled.items()},
            "lesion_sensitivity_by_stratum": {s: e.value for s, e in by_stratum.items()},
            "ci95": ci95,
            "bootstrap": {
                "n_resamples": self.n_bootstrap,
                "seed": self.seed,
                "method": BOOTSTRAP_METHOD,
            },
        }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.nan)


def bootstrap_weights(n_cases: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """How often each case is drawn in each resample: an ``(n_bootstrap, n_cases)`` float matrix.

    A statistic that is a ratio of per-case sums is then one matrix product per resample set;
    the same ``seed`` and case count give the same resamples (so every table of one evaluation
    uses the same ones).

    Examples
    --------
    >>> w = bootstrap_weights(4, 3, seed=0)
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 4), [4.0, 4.0, 4.0])
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_cases, size=(n_bootstrap, n_cases))
    rows = np.repeat(np.arange(n_bootstrap), n_cases) * n_cases
    weights = np.bincount(rows + picks.ravel(), minlength=n_bootstrap * n_cases)
    return weights.reshape(n_bootstrap, n_cases).astype(float)


def percentile_interval(resampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles of each column of ``resampled`` (one row per resample),
    ignoring NaN resamples; a column that is all NaN gives NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        low, high = np.nanpercentile(resampled, [2.5, 97.5], axis=0)
    return low, high


def _percentile_intervals(
    numerators: np.ndarray, denominators: np.ndarray, n_bootstrap: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles of each column's pooled ratio over case resamples."""
    n_cases, n_columns = numerators.shape
    if not n_cases or n_bootstrap <= 0:
        return np.full(n_columns, np.nan), np.full(n_columns, np.nan)
    weights = bootstrap_weights(n_cases, n_bootstrap, seed)
    return percentile_interval(_ratio(weights @ numerators, weights @ denominators))


def summarize_cases(
    cases: Sequence[CaseEvaluation], *, n_bootstrap: int = 1000, seed: int = 0
) -> EvaluationSummary:
    """Pool ``cases`` into an :class:`EvaluationSummary` with 95% percentile bootstrap intervals.

    Parameters
    ----------
    cases
        Per-case results.
    n_bootstrap
        Number of resamples of the cases (0: intervals are NaN).
    seed
        Seed of the ``numpy.random.Generator`` that draws the resamples.

    Returns
    -------
    EvaluationSummary
    """
    n = len(cases)
    n_strata = len(STRATUM_NAMES)
    tumor = np.array([c.has_tumor for c in cases], dtype=float)
    positive = np.array([c.predicted_positive for c in cases], dtype=float)
    lesions = np.zeros((n, n_strata))
    found = np.zeros((n, n_strata))
    early = np.zeros((n, 2))  # lesions, detected
    for row, case in enumerate(cases):
        for lesion in case.lesions:
            column = STRATUM_NAMES.index(lesion["stratum"])
            lesions[row, column] += 1
            found[row, column] += lesion["detected"]
            if lesion["early_stage"]:
                early[row] += (1, lesion["detected"])
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "dsc_mean": (np.array([c.dsc for c in cases]) * tumor, tumor),
        "nsd_mean": (np.array([c.nsd for c in cases]) * tumor, tumor),
        "lesion_sensitivity": (found.sum(axis=1), lesions.sum(axis=1)),
        "early_stage_sensitivity": (early[:, 1], early[:, 0]),
        "fp_per_case": (np.array([c.fp_components for c in cases], float), np.ones(n)),
        "patient_sensitivity": (positive * tumor, tumor),
        "patient_specificity": ((1 - positive) * (1 - tumor), 1 - tumor),
    }
    for column, name in enumerate(STRATUM_NAMES):
        columns[f"stratum {name}"] = (found[:, column], lesions[:, column])
    numerators = np.stack([num for num, _ in columns.values()], axis=1).reshape(n, -1)
    denominators = np.stack([den for _, den in columns.values()], axis=1).reshape(n, -1)
    point = _ratio(numerators.sum(axis=0), denominators.sum(axis=0))
    low, high = _percentile_intervals(numerators, denominators, int(n_bootstrap), int(seed))
    estimates = {
        name: Estimate(value, (lo, hi))
        for name, value, lo, hi in zip(columns, point.tolist(), low.tolist(), high.tolist())
    }
    tumor_dsc = [c.dsc for c in cases if c.has_tumor]
    return EvaluationSummary(
        n_cases=n,
        n_tumor_cases=int(tumor.sum()),
        n_false_positive_cases=sum(c.false_positive_case for c in cases),
        n_lesions_by_stratum=dict(zip(STRATUM_NAMES, lesions.sum(axis=0).astype(int).tolist())),
        n_detected_by_stratum=dict(zip(STRATUM_NAMES, found.sum(axis=0).astype(int).tolist())),
        n_early_stage_lesions=int(early[:, 0].sum()),
        n_early_stage_detected=int(early[:, 1].sum()),
        dsc_median=float(np.median(tumor_dsc)) if tumor_dsc else math.nan,
        dsc_mean=estimates["dsc_mean"],
        nsd_mean=estimates["nsd_mean"],
        lesion_sensitivity=estimates["lesion_sensitivity"],
        early_stage_sensitivity=estimates["early_stage_sensitivity"],
        fp_per_case=estimates["fp_per_case"],
        patient_sensitivity=estimates["patient_sensitivity"],
        patient_specificity=estimates["patient_specificity"],
        lesion_sensitivity_by_stratum={s: estimates[f"stratum {s}"] for s in STRATUM_NAMES},
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
    )
