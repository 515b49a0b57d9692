"""Every headline metric per subgroup of a per-case metadata table, and where a model falls short.

The table is a CSV file (``--metadata``) with a ``case_id`` column (the file name of the case
without ``.nii.gz``; a ``.nii.gz`` or ``.nii`` suffix in the table is dropped) and any other
columns: site or hospital, scanner, phase, age, sex... Each other column splits the cases:

- a **categorical** column gives one subgroup per value;
- a **numeric** column (every filled value a number) with more than :data:`QUANTILE_BINS`
  distinct values is cut into :data:`QUANTILE_BINS` quantile bins of the evaluated cases (edges
  rounded to 4 significant digits; lower edge inclusive), fewer distinct values are categories;
- ``--metadata-bins age=40,60`` sets the edges (``< 40``, ``[40, 60)``, ``>= 60``),
  ``age=q4`` asks for 4 quantile bins, ``phase=categorical`` keeps numbers as categories.

Empty cells (and ``NA``, ``N/A``, ``NaN``, ``null``) and evaluated cases missing from the table
form the subgroup ``(missing)``. Cases listed in the table but not evaluated are ignored with a
warning (a table often covers a whole cohort); a table that names none of the evaluated cases,
lacks ``case_id``, or lists a case twice is refused, naming the file and line.

Each subgroup gets the whole summary of :func:`~tumorsynth.evaluation.summary.summarize_cases`
(DSC, NSD, lesion and early-stage sensitivity, FP per case, patient sensitivity/specificity, each
with its 95% bootstrap interval over the subgroup's cases). A subgroup is **flagged** on a metric
when its interval lies wholly on the worse side of the overall point estimate (below it; above it
for FP per case), and marked better when wholly on the other side, provided at least
:data:`MIN_CASES_TO_FLAG` of its cases count in that metric (fewer give intervals too narrow to
trust: one case gives a zero-width interval).

Examples
--------
>>> parse_bin_specs(["age=40,60", "phase=categorical", "bmi=q4"])
{'age': (40.0, 60.0), 'phase': 'categorical', 'bmi': 4}
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.evaluation.metrics import CaseEvaluation
from tumorsynth.evaluation.summary import HEADLINE_METRICS, EvaluationSummary, summarize_cases

__all__ = [
    "CASE_ID_COLUMN",
    "FLAG_RULE",
    "MIN_CASES_TO_FLAG",
    "MISSING",
    "QUANTILE_BINS",
    "BinSpec",
    "Metadata",
    "MetadataColumn",
    "Subgroup",
    "SubgroupOutput",
    "parse_bin_specs",
    "read_metadata",
    "summarize_subgroups",
]

#: The column that names the case.
CASE_ID_COLUMN = "case_id"
#: Subgroup of cases with no value in a column (or not in the table).
MISSING = "(missing)"
#: Quantile bins of a numeric column unless ``--metadata-bins`` says otherwise.
QUANTILE_BINS = 3
#: Fewest cases counting in a metric for a subgroup to be flagged on it.
MIN_CASES_TO_FLAG = 5
#: The flag rule in words (recorded in report.json).
FLAG_RULE = (
    "a subgroup is flagged 'worse' on a metric when its 95% bootstrap interval lies wholly below "
    "the overall point estimate (wholly above for fp_per_case), 'better' when wholly on the "
    f"other side; only with at least {MIN_CASES_TO_FLAG} of its cases counting in the metric"
)

#: ``--metadata-bins`` of one column: edges, a number of quantile bins, or "categorical".
BinSpec = tuple[float, ...] | int | Literal["categorical"]

_NIFTI_SUFFIX = re.compile(r"\.nii(\.gz)?$")
_MISSING_VALUES = {"", "na", "n/a", "nan", "null"}
_LOWER_IS_BETTER = {"fp_per_case"}


def _counting_cases(cases: Sequence[CaseEvaluation], metric: str) -> int:
    """Cases that contribute to ``metric``'s denominator."""
    counts = {
        "dsc_mean": lambda c: c.has_tumor,
        "nsd_mean": lambda c: c.has_tumor,
        "lesion_sensitivity": lambda c: c.n_lesions > 0,
        "early_stage_sensitivity": lambda c: any(les["early_stage"] for les in c.lesions),
        "fp_per_case": lambda c: True,
        "patient_sensitivity": lambda c: c.has_tumor,
        "patient_specificity": lambda c: not c.has_tumor,
    }
    return sum(1 for case in cases if counts[metric](case))


# --- reading the table -------------------------------------------------------------------------


def parse_bin_specs(specs: Sequence[str]) -> dict[str, BinSpec]:
    """``["age=40,60", "phase=categorical", "bmi=q4"]`` -> column -> :data:`BinSpec`.

    Raises
    ------
    InputError
        (naming ``--metadata-bins``) no ``=``, a column given twice, edges that are not
        increasing numbers, fewer than 2 quantile bins.
    """
    out: dict[str, BinSpec] = {}
    for spec in specs:
        column, sep, value = (part.strip() for part in str(spec).partition("="))
        where = f"--metadata-bins {spec}"
        if not sep or not column or not value:
            raise InputError(
                where, "expected COLUMN=EDGES (e.g. age=40,60), COLUMN=qN or COLUMN=categorical"
            )
        if column in out:
            raise InputError(where, f"column {column!r} is given twice")
        if value.lower() == "categorical":
            out[column] = "categorical"
        elif value[0] in "qQ" and value[1:].isdigit():
            if int(value[1:]) < 2:
                raise InputError(where, f"expected at least 2 quantile bins, found {value[1:]}")
            out[column] = int(value[1:])
        else:
            try:
                edges = tuple(float(edge) for edge in value.split(","))
            except ValueError:
                raise InputError(
                    where, f"expected comma-separated numbers as bin edges, found {value!r}"
                ) from None
            if not all(math.isfinite(e) for e in edges) or list(edges) != sorted(set(edges)):
                raise InputError(where, f"expected finite, increasing edges, found {value!r}")
            out[column] = edges
    return out


@dataclass(frozen=True)
class MetadataColumn:
    """How one metadata column splits the evaluated cases.

    Attributes
    ----------
    name
        Column name in the table.
    kind
        ``categorical``, ``quantile bins`` or ``bins`` (user edges).
    edges
        Inner bin edges of a numeric column (empty for categories).
    groups
        Subgroup names in display order (categories sorted, bins low to high, ``(missing)`` last).
    of_case
        ``case_id -> subgroup name`` for every evaluated case.
    """

    name: str
    kind: Literal["categorical", "quantile bins", "bins"]
    edges: tuple[float, ...]
    groups: tuple[str, ...]
    of_case: Mapping[str, str]


@dataclass(frozen=True)
class Metadata:
    """A checked metadata table, reduced to the evaluated cases.

    Attributes
    ----------
    path
        The CSV file.
    columns
        One :class:`MetadataColumn` per column besides ``case_id``.
    unknown_cases
        Case ids in the table that the evaluation does not have (ignored).
    unlisted_cases
        Evaluated cases the table does not list (``(missing)`` in every column).
    """

    path: Path
    columns: tuple[MetadataColumn, ...]
    unknown_cases: tuple[str, ...]
    unlisted_cases: tuple[str, ...]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _label(value: float) -> str:
    return f"{value:g}"


def _bin_names(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    names = [f"< {_label(edges[0])}"]
    names += [f"[{_label(lo)}, {_label(hi)})" for lo, hi in zip(edges[:-1], edges[1:])]
    return names + [f">= {_label(edges[-1])}"]


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of the non-empty rows, cells stripped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [cell.strip() for cell in next(reader, [])]
            rows = [(reader.line_num, [c.strip() for c in row]) for row in reader if any(row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(
            str(path), f"cannot read the metadata table: expected a UTF-8 CSV file ({exc})"
        ) from exc
    return header, rows


def _column(
    name: str,
    raw: Mapping[str, str],
    lines: Mapping[str, int],
    spec: BinSpec | None,
    path: Path,
) -> MetadataColumn:
    """Split the evaluated cases by one column (``raw``: case -> cell, evaluated cases only)."""
    filled = {case: text for case, text in raw.items() if text.lower() not in _MISSING_VALUES}
    numbers = {case: _number(text) for case, text in filled.items()}
    numeric = all(value is not None for value in numbers.values()) and bool(numbers)
    if isinstance(spec, (tuple, int)) and not numeric:
        case = next(c for c, value in numbers.items() if value is None)
        raise InputError(
            f"{path}, line {lines[case]}",
            f"column {name!r} has bins from --metadata-bins but holds {filled[case]!r}, not a "
            "number",
            fix=f"fix the value, or pass --metadata-bins {name}=categorical",
        )
    distinct = len(set(numbers.values()))
    quantiles = spec if isinstance(spec, int) else QUANTILE_BINS
    categorical = spec == "categorical" or not numeric
    categorical = categorical or (spec is None and distinct <= QUANTILE_BINS)
    if categorical:
        groups = sorted(set(filled.values()))
        of_case = {case: filled.get(case, MISSING) for case in raw}
        kind: Literal["categorical", "quantile bins", "bins"] = "categorical"
        edges: tuple[float, ...] = ()
    else:
        values = np.array([numbers[case] for case in filled], dtype=float)
        position = dict(zip(filled, values.tolist()))
        if isinstance(spec, tuple):
            edges, kind = spec, "bins"
        else:
            cuts = np.quantile(values, np.arange(1, quantiles) / quantiles)
            edges = tuple(sorted({float(f"{cut:.4g}") for cut in cuts}))
            kind = "quantile bins"
        names = _bin_names(edges)
        of_case = {case: MISSING for case in raw}
        for case in filled:
            of_case[case] = names[int(np.searchsorted(edges, position[case], side="right"))]
        groups = [n for n in names if n in set(of_case.values())]
    if MISSING in of_case.values():
        groups = [*groups, MISSING]
    return MetadataColumn(name, kind, edges, tuple(groups), of_case)


def read_metadata(
    path: str | os.PathLike[str],
    case_ids: Sequence[str],
    *,
    bins: Mapping[str, BinSpec] | None = None,
) -> Metadata:
    """Read and check a per-case metadata CSV against the evaluated ``case_ids``.

    Parameters
    ----------
    path
        CSV file with a ``case_id`` column and any others (see the module).
    case_ids
        The cases of the evaluation.
    bins
        Per-column :data:`BinSpec` (from :func:`parse_bin_specs`).

    Returns
    -------
    Metadata

    Raises
    ------
    InputError
        Missing or unreadable file; no ``case_id`` column or no other column; a row whose cell
        count differs from the header's; an empty or repeated case id (lines named); no evaluated
        case in the table; ``bins`` naming a column the table lacks or a non-numeric value.

    Warns
    -----
    UserWarning
        Table rows of cases that are not evaluated; evaluated cases the table does not list.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--metadata {path}", "file does not exist", fix="check the path")
    header, rows = _read_rows(path)
    if CASE_ID_COLUMN not in header:
        raise InputError(
            str(path),
            f"expected a {CASE_ID_COLUMN!r} column in the header (line 1), found "
            f"{header or 'an empty file'}",
            fix="name the column of case ids case_id (comma-separated CSV)",
        )
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise InputError(str(path), f"expected each column once, found {repeated} twice")
    named = [h for h in header if h and h != CASE_ID_COLUMN]
    if not named:
        raise InputError(str(path), f"expected columns besides {CASE_ID_COLUMN!r}, found none")
    for column in bins or {}:
        if column not in named:
            raise InputError(
                f"--metadata-bins {column}", f"{path} has no column {column!r}; it has {named}"
            )
    table: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(
                f"{path}, line {line}",
                f"expected {len(header)} cells like the header, found {len(cells)}",
            )
        record = dict(zip(header, cells))
        case = _NIFTI_SUFFIX.sub("", record[CASE_ID_COLUMN])
        if not case:
            raise InputError(f"{path}, line {line}", "expected a case id, found an empty cell")
        if case in table:
            raise InputError(
                f"{path}, line {line}",
                f"case {case!r} is listed twice (lines {lines[case]} and {line})",
                fix="keep one row per case",
            )
        table[case], lines[case] = record, line
    evaluated = list(case_ids)
    listed = [case for case in evaluated if case in table]
    if not listed:
        raise InputError(
            str(path),
            f"expected rows for the evaluated cases, found none of them (table: "
            f"{', '.join(list(table)[:3]) or 'no rows'}...; evaluation: "
            f"{', '.join(evaluated[:3])}...)",
            fix="the case_id column must hold the prediction file names without .nii.gz",
        )
    unknown = tuple(case for case in table if case not in set(evaluated))
    unlisted = tuple(case for case in evaluated if case not in table)
    if unknown:
        warnings.warn(
            f"{path}: {len(unknown)} listed cases are not in the evaluation and are ignored "
            f"({', '.join(unknown[:5])}{'...' if len(unknown) > 5 else ''})",
            stacklevel=2,
        )
    if unlisted:
        warnings.warn(
            f"{path}: {len(unlisted)} of {len(evaluated)} evaluated cases are not in the table; "
            f"they form the subgroup {MISSING} of every column "
            f"({', '.join(unlisted[:5])}{'...' if len(unlisted) > 5 else ''})",
            stacklevel=2,
        )
    columns = tuple(
        _column(
            name,
            {case: table[case][name] if case in table else "" for case in evaluated},
            lines,
            (bins or {}).get(name),
            path,
        )
        for name in named
    )
    return Metadata(path, columns, unknown, unlisted)


# --- subgroup summaries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Subgroup:
    """One subgroup's summary and how it compares with the whole evaluation.

    Attributes
    ----------
    column, name
        The metadata column and the subgroup's value or bin.
    case_ids
        Its cases.
    summary
        Every metric over its cases, with 95% bootstrap intervals.
    flags
        ``metric -> "worse" | "better"`` where the interval lies wholly on one side of the
        overall estimate (see :data:`FLAG_RULE`).
    few_cases
        Metrics left unflagged because fewer than :data:`MIN_CASES_TO_FLAG` cases count in them.
    """

    column: str
    name: str
    case_ids: tuple[str, ...]
    summary: EvaluationSummary
    flags: Mapping[str, Literal["worse", "better"]]
    few_cases: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "n_cases": len(self.case_ids),
            "case_ids": list(self.case_ids),
            "flags": dict(self.flags),
            "too_few_cases_to_flag": list(self.few_cases),
            "summary": self.summary.to_dict(),
        }


def _flag(
    metric: str, subgroup: EvaluationSummary, overall: EvaluationSummary
) -> Literal["worse", "better"] | None:
    reference = getattr(overall, metric).value
    estimate = getattr(subgroup, metric)
    low, high = estimate.ci95
    if not all(math.isfinite(v) for v in (reference, low, high)):
        return None
    below, above = high < reference, low > reference
    if not (below or above):
        return None
    return "worse" if below != (metric in _LOWER_IS_BETTER) else "better"


@dataclass(frozen=True)
class SubgroupOutput:
    """Subgroup summaries of an evaluation, column by column."""

    metadata: Metadata
    subgroups: tuple[Subgroup, ...]

    def worse(self) -> list[Subgroup]:
        """Subgroups flagged worse than the overall estimate on at least one metric."""
        return [s for s in self.subgroups if "worse" in s.flags.values()]

    def to_dict(self) -> dict[str, object]:
        """``subgroups`` in report.json (NaN stays NaN here)."""
        return {
            "metadata": str(self.metadata.path),
            "flag_rule": FLAG_RULE,
            "min_cases_to_flag": MIN_CASES_TO_FLAG,
            "cases_not_evaluated": list(self.metadata.unknown_cases),
            "cases_not_in_table": list(self.metadata.unlisted_cases),
            "columns": [
                {
                    "name": column.name,
                    "kind": column.kind,
                    "edges": list(column.edges),
                    "groups": [s.to_dict() for s in self.subgroups if s.column == column.name],
                }
                for column in self.metadata.columns
            ],
        }


def summarize_subgroups(
    cases: Sequence[CaseEvaluation],
    metadata: Metadata,
    overall: EvaluationSummary,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> SubgroupOutput:
    """Summarize every subgroup of every metadata column and flag it against ``overall``.

    Parameters
    ----------
    cases
        The evaluated cases (each must be in ``metadata``'s columns).
    metadata
        From :func:`read_metadata` with the same cases.
    overall
        The summary of all ``cases``: the reference of the flags.
    n_bootstrap, seed
        Bootstrap of each subgroup's intervals.
    """
    subgroups = []
    for column in metadata.columns:
        for name in column.groups:
            members = [case for case in cases if column.of_case[case.case_id] == name]
            summary = summarize_cases(members, n_bootstrap=n_bootstrap, seed=seed)
            flags: dict[str, Literal["worse", "better"]] = {}
            few = []
            for metric in HEADLINE_METRICS:
                if _counting_cases(members, metric) < MIN_CASES_TO_FLAG:
                    few.append(metric)
                elif (flag := _flag(metric, summary, overall)) is not None:
                    flags[metric] = flag
            ids = tuple(case.case_id for case in members)
            subgroups.append(Subgroup(column.name, name, ids, summary, flags, tuple(few)))
    return SubgroupOutput(metadata, tuple(subgroups))
