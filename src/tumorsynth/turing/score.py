"""Score a reader study: how well did readers tell synthetic tumors from real ones?

Definitions (also written into every ``score.md``):

- **Positive = synthetic.** For a set of answers: TP = synthetic items called synthetic,
  FN = synthetic called real, TN = real called real, FP = real called synthetic, n = answers.
- **Sensitivity** = TP / (TP + FN): the share of synthetic items that readers recognised as
  synthetic. **Specificity** = TN / (TN + FP): the share of real items called real.
  **Accuracy** = (TP + TN) / n. **Balanced accuracy** = (sensitivity + specificity) / 2; its
  chance level is 50% whatever the mix of real and synthetic items, while a reader who calls
  everything real reaches the share of real items in accuracy.
  Perfectly realistic synthetic tumors drive sensitivity and accuracy to chance (50%).
- **Per reader**: 95% Wilson score intervals (``scipy.stats.binomtest``), one reader's answers
  being independent trials.
- **Pooled** (all readers, and every table by organ, size class, organ x size class and
  confidence): the answers of one reader are correlated (one skill, one threshold) and so are
  the answers to one item (one tumor is easy, another hard), so a binomial interval over all
  answers would be too narrow. The 95% interval is a **two-way cluster bootstrap**: each resample
  draws readers with replacement and, independently, items with replacement; an answer
  (reader r, item i) counts (times r was drawn) x (times i was drawn). Percentile interval over
  the resamples (seeded, 2000 by default); resamples in which a rate is undefined (no synthetic,
  or no real, item drawn) are left out of that rate's interval. With one reader this is a
  bootstrap over items. It tends to err on the wide side; with few items (a small subgroup) any
  bootstrap interval is unreliable. A rate whose answers were all right (or all wrong) cannot
  vary under resampling; it gets the Wilson interval of its counts instead of a width of 0.
- **AUC** per reader of the confidence-weighted call (+confidence when called synthetic,
  -confidence when called real; ``sklearn.metrics.roc_auc_score``, positive = synthetic): above
  0.5 when the reader is right more often when more confident, even if the calls alone are near
  chance. Needs both classes among the reader's answers, and scikit-learn.
- **Agreement**: Fleiss' kappa (Fleiss 1971) over the items every included reader answered
  (needs two readers or more), with a 95% percentile bootstrap over those items; also the mean
  pairwise percent agreement and the share of items on which all readers agreed.
- Readers with fewer than ``min_answers`` answers are left out (and named); readers who stopped
  early are included with their number of answers shown.

:func:`score_answers` is pure (answers and key in, :class:`StudyScore` out);
:func:`score_study` reads a study folder and writes ``score.md``, ``score.json``,
``answers.csv``, ``summary.csv`` and ``score.png``; the wording (the verdict, the tables) and
the files are :mod:`~tumorsynth.turing.score_report`'s.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tumorsynth._types import SIZE_CLASSES, derive_seed
from tumorsynth.errors import InputError
from tumorsynth.turing.layout import (
    ANSWERS_NAME,
    KEY_NAME,
    Answer,
    KeyEntry,
    connect_answers,
    read_answers,
    read_key,
    read_study,
)
from tumorsynth.turing.score_stats import (
    NAN_PAIR,
    Interval,
    bootstrap_interval,
    codes,
    fleiss_kappa,
    percentile_interval,
    wilson_interval,
)

__all__ = [
    "DEFAULT_RESAMPLES",
    "MIN_RESAMPLES",
    "Agreement",
    "Counts",
    "GroupScore",
    "Rates",
    "ReaderScore",
    "ScoreOutput",
    "ScoredAnswer",
    "StudyScore",
    "agreement",
    "cluster_bootstrap",
    "fleiss_kappa",
    "join_answers",
    "pooled_rates",
    "reader_score",
    "score_answers",
    "score_study",
    "wilson_interval",
]

DEFAULT_RESAMPLES = 2000
MIN_RESAMPLES = 100
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
#: Subgroups with fewer items than this are marked: their bootstrap interval is unreliable.
FEW_ITEMS = 10
#: (truth, call) of TP, FN, TN, FP.
_CELLS = (
    ("synthetic", "synthetic"),
    ("synthetic", "real"),
    ("real", "real"),
    ("real", "synthetic"),
)
_CHUNK_CELLS = 4_000_000  # resamples x answers evaluated at once (memory bound, ~32 MB)


@dataclass(frozen=True)
class ScoredAnswer:
    """One answer joined with its item's key entry."""

    answer: Answer
    entry: KeyEntry

    @property
    def correct(self) -> bool:
        return self.answer.call == self.entry.truth


@dataclass(frozen=True)
class Counts:
    """The confusion counts of a set of answers (positive = synthetic); rates are NaN when their
    denominator is 0.

    Examples
    --------
    >>> c = Counts(tp=3, fn=1, tn=2, fp=2)
    >>> c.n, c.sensitivity, c.specificity, c.accuracy
    (8, 0.75, 0.5, 0.625)
    """

    tp: int
    fn: int
    tn: int
    fp: int

    @classmethod
    def of(cls, scored: Iterable[ScoredAnswer]) -> Counts:
        pairs: Counter[tuple[str, str]] = Counter((s.entry.truth, s.answer.call) for s in scored)
        return cls(*(pairs[cell] for cell in _CELLS))

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.tn + self.fp

    @property
    def n_synthetic(self) -> int:
        return self.tp + self.fn

    @property
    def n_real(self) -> int:
        return self.tn + self.fp

    @property
    def n_correct(self) -> int:
        return self.tp + self.tn

    @property
    def sensitivity(self) -> float:
        return _ratio(self.tp, self.n_synthetic)

    @property
    def specificity(self) -> float:
        return _ratio(self.tn, self.n_real)

    @property
    def accuracy(self) -> float:
        return _ratio(self.n_correct, self.n)

    @property
    def balanced_accuracy(self) -> float:
        return (self.sensitivity + self.specificity) / 2.0


IntervalMethod = Literal["wilson", "cluster bootstrap"]


@dataclass(frozen=True)
class Rates:
    """Counts of a set of answers and the 95% intervals of its rates (``method`` says how)."""

    counts: Counts
    sensitivity_ci: Interval
    specificity_ci: Interval
    accuracy_ci: Interval
    balanced_accuracy_ci: Interval
    method: IntervalMethod
    n_items: int
    n_readers: int


@dataclass(frozen=True)
class ReaderScore:
    """One reader: rates with Wilson intervals, AUC of the confidence-weighted call."""

    reader: str
    rates: Rates
    total: int | None  # items in this reader's order (None: unknown)
    auc: float
    auc_note: str  # why the AUC is NaN ("" when it is a number)
    by_confidence: Mapping[int, Counts]

    @property
    def answered(self) -> int:
        return self.rates.counts.n

    @property
    def partial(self) -> bool:
        return self.total is not None and self.answered < self.total


@dataclass(frozen=True)
class GroupScore:
    """Rates pooled over readers for one subgroup, e.g. ``("liver", "small")``."""

    group: tuple[str, ...]
    rates: Rates


@dataclass(frozen=True)
class Agreement:
    """Inter-reader agreement on the items every included reader answered."""

    readers: tuple[str, ...]
    n_items: int
    kappa: float
    kappa_ci: Interval
    pairwise_agreement: float  # mean over items of the share of agreeing reader pairs
    unanimous: float  # share of items all readers called the same
    note: str = ""  # why kappa is not computable ("" when it is)

    @property
    def computable(self) -> bool:
        return not self.note


@dataclass(frozen=True)
class StudyScore:
    """Everything ``score`` reports (see the module docstring for the definitions)."""

    readers: tuple[ReaderScore, ...]
    excluded: tuple[tuple[str, int], ...]  # (reader, answers) left out by min_answers
    pooled: Rates
    by_organ: tuple[GroupScore, ...]
    by_size_class: tuple[GroupScore, ...]
    by_organ_size_class: tuple[GroupScore, ...]
    by_confidence: tuple[GroupScore, ...]
    agreement: Agreement
    scored: tuple[ScoredAnswer, ...]
    min_answers: int
    n_resamples: int
    seed: int


@dataclass(frozen=True)
class ScoreOutput:
    """What :func:`score_study` computed and the files it wrote (name -> path)."""

    score: StudyScore
    title: str
    files: Mapping[str, Path] = field(default_factory=dict)


def join_answers(
    answers: Sequence[Answer], key: Mapping[str, KeyEntry], *, where: str = "answers"
) -> list[ScoredAnswer]:
    """Each answer with its key entry; InputError (at ``where``) naming the item ids that the key
    does not have."""
    missing = sorted({a.item_id for a in answers if a.item_id not in key})
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(
            where,
            f"expected answers to items of the answer key {KEY_NAME}, found answers to "
            f"{len(missing)} item id(s) it does not have: {shown}",
            fix="score the study these answers were given in (answers.sqlite and key/ of one "
            "`turing create` run)",
        )
    return [ScoredAnswer(a, key[a.item_id]) for a in answers]


def cluster_bootstrap(
    scored: Sequence[ScoredAnswer], n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, np.ndarray]:
    """Two-way cluster bootstrap (readers x items) of the pooled rates.

    Each resample draws the readers with replacement and, independently, the items with
    replacement; answer (r, i) is weighted by how often r and i were drawn.

    Returns
    -------
    dict
        ``sensitivity``, ``specificity``, ``accuracy``, ``balanced_accuracy`` -> ``n_resamples``
        values each (NaN where the resample holds no synthetic, or no real, item).
    """
    names = ("sensitivity", "specificity", "accuracy", "balanced_accuracy")
    if not scored:
        return {name: np.full(n_resamples, np.nan) for name in names}
    reader_of = codes([s.answer.reader for s in scored])
    item_of = codes([s.answer.item_id for s in scored])
    synthetic = np.array([s.entry.truth == "synthetic" for s in scored], dtype=np.float64)
    correct = np.array([s.correct for s in scored], dtype=np.float64)
    columns = np.stack(
        [synthetic * correct, synthetic, (1 - synthetic) * correct, 1 - synthetic], axis=1
    )
    n_readers, n_items = int(reader_of.max()) + 1, int(item_of.max()) + 1
    rng = np.random.default_rng(seed)
    sums = np.empty((n_resamples, 4))
    chunk = max(1, _CHUNK_CELLS // len(scored))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        reader_weight = rng.multinomial(n_readers, np.full(n_readers, 1.0 / n_readers), size)
        item_weight = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size)
        weight = reader_weight[:, reader_of].astype(np.float64) * item_weight[:, item_of]
        sums[start : start + size] = weight @ columns
    tp, n_synthetic, tn, n_real = sums.T
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = np.where(n_synthetic > 0, tp / n_synthetic, np.nan)
        specificity = np.where(n_real > 0, tn / n_real, np.nan)
        accuracy = (tp + tn) / (n_synthetic + n_real)
    return dict(zip(names, (sensitivity, specificity, accuracy, (sensitivity + specificity) / 2.0)))


def pooled_rates(
    scored: Sequence[ScoredAnswer], n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Rates:
    """Counts of ``scored`` (all readers together) with 95% two-way cluster bootstrap
    intervals."""
    draws = cluster_bootstrap(scored, n_resamples, seed)
    counts = Counts.of(scored)
    return Rates(
        counts,
        sensitivity_ci=bootstrap_interval(draws["sensitivity"], counts.tp, counts.n_synthetic),
        specificity_ci=bootstrap_interval(draws["specificity"], counts.tn, counts.n_real),
        accuracy_ci=bootstrap_interval(draws["accuracy"], counts.n_correct, counts.n),
        balanced_accuracy_ci=percentile_interval(draws["balanced_accuracy"]),
        method="cluster bootstrap",
        n_items=len({s.answer.item_id for s in scored}),
        n_readers=len({s.answer.reader for s in scored}),
    )


def reader_score(reader: str, scored: Sequence[ScoredAnswer], total: int | None) -> ReaderScore:
    """One reader's rates (Wilson intervals), AUC and counts by confidence level."""
    counts = Counts.of(scored)
    rates = Rates(
        counts,
        wilson_interval(counts.tp, counts.n_synthetic),
        wilson_interval(counts.tn, counts.n_real),
        wilson_interval(counts.n_correct, counts.n),
        NAN_PAIR,  # no Wilson interval for a mean of two proportions
        method="wilson",
        n_items=len({s.answer.item_id for s in scored}),
        n_readers=1,
    )
    auc, note = _confidence_auc(scored)
    by_confidence = {
        level: Counts.of(s for s in scored if s.answer.confidence == level)
        for level in CONFIDENCE_LEVELS
    }
    return ReaderScore(reader, rates, total, auc, note, by_confidence)


def agreement(
    scored: Sequence[ScoredAnswer], n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Agreement:
    """Fleiss' kappa, its 95% bootstrap interval over items, mean pairwise agreement and the
    unanimous share, on the items every reader in ``scored`` answered."""
    readers = tuple(sorted({s.answer.reader for s in scored}))
    if len(readers) < 2:
        return Agreement(readers, 0, math.nan, NAN_PAIR, math.nan, math.nan, "needs 2 readers")
    calls: dict[str, dict[str, str]] = {}
    for s in scored:
        calls.setdefault(s.answer.item_id, {})[s.answer.reader] = s.answer.call
    common = sorted(i for i, by in calls.items() if len(by) == len(readers))
    if not common:
        note = "no item was answered by every included reader"
        return Agreement(readers, 0, math.nan, NAN_PAIR, math.nan, math.nan, note)
    n = len(readers)
    n_synthetic = np.array([sum(c == "synthetic" for c in calls[i].values()) for i in common])
    table = np.stack([n_synthetic, n - n_synthetic], axis=1)
    per_item = (np.sum(table**2, axis=1) - n) / (n * (n - 1))  # P_i
    kappa = fleiss_kappa(table)
    note = "" if math.isfinite(kappa) else "every answer was the same call: kappa is undefined"
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(common), size=(n_resamples, len(common)))
    observed = per_item[picks].mean(axis=1)
    share = n_synthetic[picks].sum(axis=1) / (n * len(common))
    chance = share**2 + (1 - share) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(chance < 1.0, (observed - chance) / (1.0 - chance), np.nan)
    return Agreement(
        readers,
        len(common),
        kappa,
        percentile_interval(draws) if not note else NAN_PAIR,
        float(per_item.mean()),
        float(np.mean((n_synthetic == 0) | (n_synthetic == n))),
        note,
    )


def score_answers(
    answers: Sequence[Answer],
    key: Mapping[str, KeyEntry],
    *,
    totals: Mapping[str, int] | None = None,
    min_answers: int = 1,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    where: str = "answers",
) -> StudyScore:
    """Score ``answers`` against ``key`` (pure: nothing is read or written).

    Parameters
    ----------
    answers
        The answers to score (all readers).
    key
        Item id -> key entry; every answered item must be in it (InputError at ``where``).
    totals
        Reader -> number of items in their order; readers in it without answers are reported as
        left out. None: only readers with answers are known.
    min_answers
        Readers with fewer answers are left out.
    n_resamples, seed
        The bootstraps (pooled rates, subgroups, kappa); the same seed gives the same intervals.

    Returns
    -------
    StudyScore
    """
    if min_answers < 1:
        raise InputError("--min-answers", f"expected an integer >= 1, found {min_answers}")
    if n_resamples < MIN_RESAMPLES:
        raise InputError(
            "--resamples", f"expected at least {MIN_RESAMPLES} resamples, found {n_resamples}"
        )
    scored_all = join_answers(answers, key, where=where)
    by_reader: dict[str, list[ScoredAnswer]] = {name: [] for name in (totals or {})}
    for s in scored_all:
        by_reader.setdefault(s.answer.reader, []).append(s)
    included = sorted(r for r, rows in by_reader.items() if len(rows) >= min_answers)
    excluded = tuple(
        (r, len(rows)) for r, rows in sorted(by_reader.items()) if len(rows) < min_answers
    )
    if not included:
        raise InputError(
            where,
            f"expected a reader with at least {min_answers} answer(s), found "
            + ", ".join(f"{r}: {k}" for r, k in excluded),
        )
    scored = tuple(
        sorted((s for r in included for s in by_reader[r]), key=_answer_order)  # by reader
    )
    readers = tuple(reader_score(r, by_reader[r], (totals or {}).get(r)) for r in included)

    def groups(
        name: str, label: Callable[[ScoredAnswer], tuple[str, ...]]
    ) -> tuple[GroupScore, ...]:
        members: dict[tuple[str, ...], list[ScoredAnswer]] = {}
        for s in scored:
            members.setdefault(label(s), []).append(s)
        return tuple(
            GroupScore(g, pooled_rates(members[g], n_resamples, derive_seed(seed, name, *g)))
            for g in sorted(members, key=_group_order)
        )

    return StudyScore(
        readers=readers,
        excluded=excluded,
        pooled=pooled_rates(scored, n_resamples, seed),
        by_organ=groups("organ", lambda s: (s.entry.organ,)),
        by_size_class=groups("size", lambda s: (s.entry.size_class,)),
        by_organ_size_class=groups("organ x size", lambda s: (s.entry.organ, s.entry.size_class)),
        by_confidence=groups("confidence", lambda s: (str(s.answer.confidence),)),
        agreement=agreement(scored, n_resamples, derive_seed(seed, "kappa")),
        scored=scored,
        min_answers=min_answers,
        n_resamples=n_resamples,
        seed=seed,
    )


def score_study(
    study: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    readers: Sequence[str] | None = None,
    min_answers: int = 1,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    plots: bool = True,
) -> ScoreOutput:
    """Score the reader study in folder ``study``; write the report into ``out`` (default
    ``STUDY/score``): ``score.md``, ``score.json``, ``answers.csv``, ``summary.csv`` and (with
    matplotlib, unless ``plots`` is False) ``score.png``. Re-running overwrites them.

    ``readers`` limits the scoring to these reader names (all by default). Bad input is an
    InputError naming the file: not a study, no answers database, no answers, answers to items
    the key does not have, unknown reader names.
    """
    from tumorsynth.turing.score_report import write_score

    study = Path(study)
    info = read_study(study)
    key = read_key(study)
    database = str(study / ANSWERS_NAME)
    try:
        totals = _reader_totals(study, info.study_id)
        answers = read_answers(study)
    except sqlite3.Error as exc:
        raise InputError(database, f"expected the study's answers database, found {exc}") from exc
    if readers:
        unknown = sorted(set(readers) - set(totals))
        if unknown:
            raise InputError(
                database,
                f"no reader named {', '.join(map(repr, unknown))}; its readers are "
                + (", ".join(sorted(totals)) or "none"),
                fix="check the names given to --readers",
            )
        answers = [a for a in answers if a.reader in readers]
        totals = {r: t for r, t in totals.items() if r in readers}
    if not answers:
        raise InputError(
            database,
            "expected answers to score, found none"
            + (f" from {', '.join(readers)}" if readers else ""),
            fix="let readers answer first (`tumorsynth turing serve STUDY`)",
        )
    score = score_answers(
        answers,
        key,
        totals=totals,
        min_answers=min_answers,
        n_resamples=n_resamples,
        seed=seed,
        where=database,
    )
    folder = Path(out) if out is not None else study / "score"
    files = write_score(score, info.title, folder, plots=plots)
    return ScoreOutput(score, info.title, files)


def _reader_totals(study: Path, study_id: str) -> dict[str, int]:
    """Reader name -> number of items in their order, from ``answers.sqlite``; InputError when
    the database's ``meta`` binds it to another study (the store writes that row)."""
    import json

    with closing(connect_answers(study)) as connection:
        bound = connection.execute("SELECT value FROM meta WHERE key = 'study_id'").fetchone()
        rows = connection.execute("SELECT name, item_order FROM readers").fetchall()
    if bound is not None and bound[0] != study_id:
        raise InputError(
            str(study / ANSWERS_NAME),
            f"belongs to the study with study_id {bound[0]!r}, but study.json here has "
            f"study_id {study_id!r}",
            fix="score each study with its own answers.sqlite",
        )
    totals = {}
    for name, order in rows:
        try:
            totals[str(name)] = len(json.loads(order))
        except (TypeError, ValueError):
            totals[str(name)] = 0
    return totals


def _ratio(k: int, n: int) -> float:
    return k / n if n else math.nan


def _confidence_auc(scored: Sequence[ScoredAnswer]) -> tuple[float, str]:
    truth = [s.entry.truth == "synthetic" for s in scored]
    if all(truth) or not any(truth):
        return math.nan, "needs answers to both real and synthetic items"
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        return math.nan, "scikit-learn is not installed (pip install 'tumorsynth[realism]')"
    signed = [s.answer.confidence * (1 if s.answer.call == "synthetic" else -1) for s in scored]
    return float(roc_auc_score(truth, signed)), ""


def _answer_order(s: ScoredAnswer) -> tuple[str, int, str]:
    return s.answer.reader, s.answer.position, s.answer.item_id


def _group_order(group: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """Organs alphabetically, size classes tiny..large (then unknown ones), confidence 1..5."""
    return tuple(
        (SIZE_CLASSES.index(part), part) if part in SIZE_CLASSES else (len(SIZE_CLASSES), part)
        for part in group
    )
