"""``replay --verify-filter``: score the replayed tumors again with the filter their records name.

Replay never needs the filter: a record holds the appearance that passed. Verifying loads each
segmentor the records name (from where they say, or from ``checkpoint`` when it moved), refuses
one whose files differ from the recorded hashes, scores every replayed tumor that carries a
verdict, and refuses a tumor whose verdict comes out otherwise, naming its manifest line. The
new records keep the old verdict and add ``verified_score``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tumorsynth.errors import InputError
from tumorsynth.io.records import TumorRecord
from tumorsynth.pipelines.replay_plan import ReplayVariant

if TYPE_CHECKING:
    from tumorsynth.pipelines.tumor_filter import TumorFilter

__all__ = ["verified_verdict", "verifying_filters"]


def verifying_filters(
    variants: Sequence[ReplayVariant], checkpoint: str | os.PathLike[str] | None = None
) -> list[TumorFilter]:
    """One filter per organ whose records carry a verdict, as the records describe it."""
    from tumorsynth.pipelines.tumor_filter import TumorFilter

    wanted: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for v in variants:
        for where, record in zip(v.wheres, v.records, strict=True):
            verdict = record.filter_verdict
            if verdict is None:
                continue
            first = wanted.setdefault(record.organ, (where, verdict))
            if first[1].get("weights_sha256") != verdict.get("weights_sha256"):
                raise InputError(
                    f"{where}: filter_verdict",
                    f"expected the {record.organ} filter of {first[0]}, found another segmentor "
                    "(other weights); one filter per organ can be verified",
                )
    if not wanted:
        raise InputError(
            "--verify-filter", "expected records with filter verdicts, found none (no --filter)"
        )
    filters = []
    for organ, (where, verdict) in sorted(wanted.items()):
        folder = checkpoint or verdict["checkpoint"]
        judge = TumorFilter.load(folder, threshold=float(verdict["threshold"]))
        if judge.files != dict(verdict["weights_sha256"]):
            raise InputError(
                str(folder),
                f"is not the {organ} segmentor that judged the tumors ({where}): its files "
                f"hash {judge.files}, the record pins {dict(verdict['weights_sha256'])}",
                fix="pass the segmentor the records name (--verify-filter DIR)",
            )
        filters.append(judge)
    return filters


def verified_verdict(where: str, old: TumorRecord, new: TumorRecord) -> Mapping[str, Any] | None:
    """The replayed record's verdict: the recorded one plus ``verified_score``; refuses a
    tumor the filter now judges otherwise."""
    if old.filter_verdict is None or new.filter_verdict is None:
        return old.filter_verdict
    score = float(new.filter_verdict["score"])
    passed = bool(new.filter_verdict["passed"])
    if passed != (old.filter_verdict["verdict"] == "passed"):
        raise InputError(
            f"{where}: filter_verdict",
            f"the filter now scores the replayed tumor {score:.4f} "
            f"({'passes' if passed else 'fails'} at {old.filter_verdict['threshold']}), the "
            f"record says {old.filter_verdict['verdict']} at {old.filter_verdict['score']}",
            fix="replay with the sources, generator and segmentor the records name",
        )
    return {**old.filter_verdict, "verified_score": round(score, 4)}
