"""Quality-filter settings as runs store them (JSON-able; no torch until a filter is built), and
the acceptance table of a run's records.

The filter itself is :class:`~tumorsynth.pipelines.tumor_filter.TumorFilter`; this module is what
the synthesis core, batch runs and the CLI hold, so that a run without a filter never imports
torch.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tumorsynth.errors import InputError
from tumorsynth.io.records import TumorRecord

if TYPE_CHECKING:
    from tumorsynth.pipelines.tumor_filter import TumorFilter

__all__ = [
    "FILTER_ON_FAIL",
    "FilterSettings",
    "acceptance_table",
    "check_judging",
    "format_acceptance",
]

#: What a tumor that fails every attempt becomes: kept and reported, or left out of the case.
FILTER_ON_FAIL = ("keep", "skip")
#: The key of a variant's first record that lists the tumors its filter left out.
LEFT_OUT_KEY = "filter_left_out"


@dataclass(frozen=True)
class FilterSettings:
    """One or more segmentor checkpoints (at most one per organ) and how they judge.

    Attributes
    ----------
    checkpoints
        Segmentor folders written by ``tumorsynth train``.
    threshold
        A tumor passes when more than this fraction of its voxels are predicted as tumor.
    retries
        Redraws of a failing tumor's appearance (seeds derived from its own).
    on_fail
        ``keep`` the last attempt with a ``rejected`` verdict, or ``skip`` it.
    device
        Where the segmentors run (``auto``: a GPU when there is one).
    """

    checkpoints: tuple[str, ...]
    threshold: float = 0.7
    retries: int = 3
    on_fail: str = "keep"
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoints", tuple(str(c) for c in self.checkpoints))
        if not self.checkpoints:
            raise InputError("--filter", "expected one or more segmentor checkpoints, found none")
        check_judging(self.threshold, self.retries, self.on_fail, prefix="--filter-")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> FilterSettings:
        """The settings of a config or transform: ``{checkpoints: [DIR] or DIR, threshold,
        retries, on_fail, device}`` (``checkpoint`` for one); unknown keys are refused."""
        fields = dict(settings)
        checkpoints = fields.pop("checkpoints", fields.pop("checkpoint", ()))
        unknown = sorted(set(fields) - _MAPPING_KEYS)
        if unknown:
            raise InputError(
                "filter",
                f"unknown setting(s) {unknown}; known are checkpoints, {sorted(_MAPPING_KEYS)} "
                f"(found {sorted(settings)})",
            )
        if isinstance(checkpoints, str):
            checkpoints = (checkpoints,)
        return cls(tuple(checkpoints), **fields)

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoints": list(self.checkpoints),
            "threshold": float(self.threshold),
            "retries": int(self.retries),
            "on_fail": self.on_fail,
            "device": self.device,
        }

    def build(self) -> list[TumorFilter]:
        """The filters, loaded once per process (each checkpoint's hashes checked)."""
        return list(_cached_filters(json.dumps(self.to_json(), sort_keys=True)))

    def check(self, organs: Sequence[str]) -> None:
        """Load every checkpoint and check them against the organs that get tumors (before any
        output is written)."""
        from tumorsynth.pipelines.synthesize import check_filters

        check_filters(self.build(), organs)


#: The keys of :meth:`FilterSettings.from_mapping` besides the checkpoints.
_MAPPING_KEYS = {"threshold", "retries", "on_fail", "device"}


def check_judging(threshold: float, retries: int, on_fail: str, *, prefix: str = "filter_") -> None:
    """Refuse a threshold outside [0, 1), negative retries or an unknown ``on_fail``; errors name
    the setting as ``prefix`` + threshold / retries / on-fail (``--filter-threshold`` for the
    CLI, ``filter_threshold`` for Python)."""
    dash = "-" if prefix.endswith("-") else "_"
    if not (math.isfinite(float(threshold)) and 0.0 <= float(threshold) < 1.0):
        raise InputError(f"{prefix}threshold", f"expected a fraction in [0, 1), found {threshold}")
    if int(retries) < 0:
        raise InputError(f"{prefix}retries", f"expected a count >= 0, found {retries}")
    if on_fail not in FILTER_ON_FAIL:
        raise InputError(
            f"{prefix}on{dash}fail",
            f"expected one of {', '.join(FILTER_ON_FAIL)}, found {on_fail!r}",
        )


@functools.lru_cache(maxsize=4)
def _cached_filters(settings_json: str) -> tuple[TumorFilter, ...]:
    from tumorsynth.pipelines.tumor_filter import TumorFilter

    settings = json.loads(settings_json)
    return tuple(
        TumorFilter.load(
            checkpoint,
            device=settings["device"],
            threshold=settings["threshold"],
            retries=settings["retries"],
            on_fail=settings["on_fail"],
        )
        for checkpoint in settings["checkpoints"]
    )


def acceptance_table(records: Iterable[TumorRecord]) -> list[dict[str, Any]]:
    """Per organ and size class, how the filter judged the tumors of ``records``: tumors judged,
    passed at the first attempt, passed after redraws, kept as rejected, left out, attempts
    rendered, and the acceptance rate (passed / attempts rendered)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(organ: str, size: str) -> dict[str, Any]:
        return rows.setdefault(
            (organ, size),
            {
                "organ": organ,
                "size_class": size,
                "tumors": 0,
                "first_attempt": 0,
                "after_redraws": 0,
                "rejected_kept": 0,
                "left_out": 0,
                "attempts": 0,
            },
        )

    for record in records:
        note = record.filter_verdict
        if note is not None:
            r = row(record.organ, record.size_class)
            r["tumors"] += 1
            r["attempts"] += int(note["attempts"])
            if note["verdict"] != "passed":
                r["rejected_kept"] += 1
            elif int(note["attempts"]) == 1:
                r["first_attempt"] += 1
            else:
                r["after_redraws"] += 1
        for left in record.extra.get(LEFT_OUT_KEY, []) or []:
            r = row(str(left["organ"]), str(left["size_class"]))
            r["tumors"] += 1
            r["left_out"] += 1
            r["attempts"] += int(left["attempts"])
    out = []
    for key in sorted(rows):
        r = rows[key]
        passed = r["first_attempt"] + r["after_redraws"]
        r["acceptance"] = round(passed / r["attempts"], 4) if r["attempts"] else math.nan
        out.append(r)
    return out


def format_acceptance(rows: Sequence[dict[str, Any]]) -> str:
    """The acceptance table for the console."""
    lines = [
        f"{'organ':<10} {'size':<7} {'tumors':>6} {'1st try':>7} {'redrawn':>7} "
        f"{'rejected':>8} {'left out':>8} {'acceptance':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r['organ']:<10} {r['size_class']:<7} {r['tumors']:>6} {r['first_attempt']:>7} "
            f"{r['after_redraws']:>7} {r['rejected_kept']:>8} {r['left_out']:>8} "
            f"{100.0 * r['acceptance']:>9.0f}%"
        )
    return "\n".join(lines)
