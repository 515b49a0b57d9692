"""``turing score``: rates per reader and pooled, subgroup tables, Fleiss' kappa, the files, bad
input. The study is built here directly (study.json, key, answers.sqlite by SQL), with simulated
readers whose behaviour is known, so the expected numbers are counted independently."""

from __future__ import annotations

import csv
import json
import math
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from shared_data import require_module

from tumorsynth.cli.main import main
from tumorsynth.errors import InputError
from tumorsynth.turing.layout import (
    ANSWERS_NAME,
    KEY_NAME,
    STUDY_NAME,
    Answer,
    KeyEntry,
    StudyInfo,
    connect_answers,
)
from tumorsynth.turing.score import (
    Counts,
    ScoredAnswer,
    agreement,
    fleiss_kappa,
    score_answers,
    score_study,
    wilson_interval,
)
from tumorsynth.turing.score_report import ANSWER_COLUMNS, render_markdown, verdict

SIZES = ("tiny", "small", "medium", "large")
N_ITEMS = 64  # 2 truths x 2 organs x 4 size classes x 4 items
RESAMPLES = 300


def make_key(n_items: int = N_ITEMS) -> list[KeyEntry]:
    """Items alternate synthetic/real; organ and size class cycle so every cell holds items."""
    return [
        KeyEntry(
            item_id=f"{0xA0000000 + 7919 * i:016x}",
            truth="synthetic" if i % 2 == 0 else "real",
            organ=("liver", "kidney")[(i // 2) % 2],
            size_class=SIZES[(i // 4) % 4],
            diameter_mm=5.0 + i,
            volume_ml=0.1 * i,
            source_image=f"case_{i % 3}.nii.gz",
            source_label=f"case_{i % 3}_seg.nii.gz",
            component=1 + i % 2,
            center_vox=(10, 20, 30),
            generator="heuristic" if i % 2 == 0 else "",
        )
        for i in range(n_items)
    ]


def simulate(key: list[KeyEntry]) -> dict[str, list[tuple[str, str, int, str]]]:
    """Reader -> answers (item_id, call, confidence, comment) in the reader's order.

    alice is always right (confidence 5); bob always says real (confidence 3); carol is right
    with probability 0.7 (seeded); dave guesses and stops after 16 items; erin never answers.
    """
    rng = np.random.default_rng(7)
    other = {"real": "synthetic", "synthetic": "real"}
    readers: dict[str, list[tuple[str, str, int, str]]] = {"erin": []}
    readers["alice"] = [(e.item_id, e.truth, 5, "") for e in key]
    readers["bob"] = [(e.item_id, "real", 3, "") for e in key]
    carol = []
    for e in rng.permutation(np.array(key, dtype=object)):
        right = rng.random() < 0.7
        carol.append((e.item_id, e.truth if right else other[e.truth], int(rng.integers(1, 6)), ""))
    readers["carol"] = carol
    guesses = [str(c) for c in rng.choice(["real", "synthetic"], size=16)]
    readers["dave"] = [(e.item_id, g, 1, "") for e, g in zip(key, guesses)]
    # free text that a CSV must quote, and one a spreadsheet would run as a formula
    item, call, confidence, _ = readers["alice"][0]
    readers["alice"][0] = (item, call, confidence, 'edge, "sharp"\nsecond line')
    item, call, confidence, _ = readers["alice"][1]
    readers["alice"][1] = (item, call, confidence, "=HYPERLINK(1)")
    return readers


def write_study(
    folder: Path,
    key: list[KeyEntry],
    readers: dict[str, list[tuple[str, str, int, str]]],
    *,
    database: bool = True,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = StudyInfo(
        title="simulated study",
        item_ids=tuple(e.item_id for e in key),
        shape=(8, 8, 8),
        spacing_mm=(1.0, 1.0, 1.0),
        study_id="0123456789abcdef",
    )
    (folder / STUDY_NAME).write_text(json.dumps(info.to_dict()))
    (folder / "key").mkdir(exist_ok=True)
    (folder / KEY_NAME).write_text(json.dumps({"items": [e.to_dict() for e in key], "seed": 0}))
    if not database:
        return folder
    with closing(connect_answers(folder, create=True)) as connection:
        for reader_id, (name, answers) in enumerate(sorted(readers.items()), start=1):
            connection.execute(
                "INSERT INTO readers VALUES (?, ?, ?, ?, ?)",
                (reader_id, name, f"{reader_id:064x}", "2025-01-01T00:00:00Z", _order(key)),
            )
            connection.executemany(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (reader_id, item, position, call, conf, text, "2025-01-02T00:00:00Z", 12.5)
                    for position, (item, call, conf, text) in enumerate(answers)
                ],
            )
    return folder


def _order(key: list[KeyEntry]) -> str:
    return json.dumps([e.item_id for e in key])


def hand_counts(key: list[KeyEntry], answers: list[tuple[str, str, int, str]]) -> tuple[int, ...]:
    """(TP, FN, TN, FP) counted here, independently of the library."""
    truth = {e.item_id: e.truth for e in key}
    pairs = [(truth[item], call) for item, call, _, _ in answers]
    return (
        pairs.count(("synthetic", "synthetic")),
        pairs.count(("synthetic", "real")),
        pairs.count(("real", "real")),
        pairs.count(("real", "synthetic")),
    )


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[KeyEntry], dict]:
    key = make_key()
    readers = simulate(key)
    return write_study(tmp_path_factory.mktemp("study"), key, readers), key, readers


@pytest.fixture(scope="module")
def scored(simulated: tuple[Path, list[KeyEntry], dict]):  # type: ignore[no-untyped-def]
    study, _, _ = simulated
    return score_study(study, n_resamples=RESAMPLES, seed=3)


def as_answers(readers: dict[str, list[tuple[str, str, int, str]]]) -> list[Answer]:
    return [
        Answer(name, item, position, call, conf, text, "2025-01-02T00:00:00Z", None)  # type: ignore[arg-type]
        for name, answers in readers.items()
        for position, (item, call, conf, text) in enumerate(answers)
    ]


# -- rates ------------------------------------------------------------------------------------


def test_known_readers_have_exact_rates(scored) -> None:  # type: ignore[no-untyped-def]
    by_name = {r.reader: r for r in scored.score.readers}
    alice, bob = by_name["alice"].rates.counts, by_name["bob"].rates.counts
    assert (alice.tp, alice.fn, alice.tn, alice.fp) == (32, 0, 32, 0)
    assert (alice.sensitivity, alice.specificity, alice.accuracy) == (1.0, 1.0, 1.0)
    assert (bob.tp, bob.fn, bob.tn, bob.fp) == (0, 32, 32, 0)
    assert (bob.sensitivity, bob.specificity, bob.accuracy) == (0.0, 1.0, 0.5)
    # Wilson intervals: a perfect score of 32 still leaves room below 1
    low, high = by_name["alice"].rates.sensitivity_ci
    assert 0.85 < low < 1.0 and high == pytest.approx(1.0)
    require_module("sklearn.metrics")
    assert by_name["alice"].auc == 1.0
    assert by_name["bob"].auc == 0.5  # one call, one confidence: no ranking at all


def test_noisy_reader_is_near_its_true_accuracy(scored, simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    carol = next(r for r in scored.score.readers if r.reader == "carol")
    counts = carol.rates.counts
    assert (counts.tp, counts.fn, counts.tn, counts.fp) == hand_counts(key, readers["carol"])
    assert abs(counts.accuracy - 0.7) < 0.12
    low, high = carol.rates.accuracy_ci
    assert low < 0.7 < high
    assert carol.rates.method == "wilson"


def test_pooled_counts_are_the_sum_of_the_included_readers(scored, simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    expected = np.sum([hand_counts(key, readers[r]) for r in ("alice", "bob", "carol", "dave")], 0)
    pooled = scored.score.pooled
    c = pooled.counts
    assert (c.tp, c.fn, c.tn, c.fp) == tuple(expected)
    assert c.accuracy == pytest.approx((expected[0] + expected[2]) / expected.sum())
    assert pooled.method == "cluster bootstrap"
    for value, (low, high) in (
        (c.sensitivity, pooled.sensitivity_ci),
        (c.specificity, pooled.specificity_ci),
        (c.accuracy, pooled.accuracy_ci),
    ):
        assert low <= value <= high and high - low > 0.01
    assert (pooled.n_items, pooled.n_readers) == (N_ITEMS, 4)


def test_bootstrap_of_one_reader_matches_wilson(simulated) -> None:  # type: ignore[no-untyped-def]
    """With one reader the two-way bootstrap is a bootstrap over items: its interval is close to
    the Wilson interval of the same counts."""
    _, key, readers = simulated
    score = score_answers(
        as_answers({"carol": readers["carol"]}), {e.item_id: e for e in key}, n_resamples=2000
    )
    (wilson_low, wilson_high), (low, high) = (
        score.readers[0].rates.accuracy_ci,
        score.pooled.accuracy_ci,
    )
    assert abs(low - wilson_low) < 0.04 and abs(high - wilson_high) < 0.04


def test_readers_who_differ_widen_the_pooled_interval(scored) -> None:  # type: ignore[no-untyped-def]
    """alice (always right) and bob (always real) are far apart: resampling readers must show it,
    so the pooled interval is much wider than a binomial interval over all answers."""
    pooled = scored.score.pooled
    c = pooled.counts
    naive_low, naive_high = wilson_interval(c.n_correct, c.n)
    low, high = pooled.accuracy_ci
    assert high - low > 2 * (naive_high - naive_low)


def test_partial_and_silent_readers(scored) -> None:  # type: ignore[no-untyped-def]
    score = scored.score
    dave = next(r for r in score.readers if r.reader == "dave")
    assert (dave.answered, dave.total, dave.partial) == (16, N_ITEMS, True)
    assert [r.reader for r in score.readers] == ["alice", "bob", "carol", "dave"]
    assert score.excluded == (("erin", 0),)
    text = scored.files["markdown"].read_text(encoding="utf-8")
    assert "erin: left out, 0 answer(s)" in text
    assert "dave: stopped early, 16 of 64 items answered (included)" in text


def test_min_answers_leaves_out_short_readers(simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    score = score_answers(
        as_answers(readers), {e.item_id: e for e in key}, min_answers=20, n_resamples=100
    )
    assert [r.reader for r in score.readers] == ["alice", "bob", "carol"]
    assert dict(score.excluded) == {"dave": 16}  # erin has no answers and no known total here


def test_subgroup_tables_add_up(scored) -> None:  # type: ignore[no-untyped-def]
    score = scored.score

    def total(groups) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
        return tuple(
            int(x)
            for x in np.sum(
                [
                    [g.rates.counts.tp, g.rates.counts.fn, g.rates.counts.tn, g.rates.counts.fp]
                    for g in groups
                ],
                0,
            )
        )

    c = score.pooled.counts
    for groups in (
        score.by_organ,
        score.by_size_class,
        score.by_organ_size_class,
        score.by_confidence,
    ):
        assert total(groups) == (c.tp, c.fn, c.tn, c.fp)
    assert [g.group for g in score.by_size_class] == [(s,) for s in SIZES]
    assert [g.group[0] for g in score.by_organ] == ["kidney", "liver"]
    for organ in score.by_organ:
        cells = [g for g in score.by_organ_size_class if g.group[0] == organ.group[0]]
        assert len(cells) == 4
        assert total(cells) == total([organ])
        assert organ.rates.n_items == N_ITEMS // 2
    # alice (confidence 5) is always right, dave (confidence 1) guesses
    level5 = next(g for g in score.by_confidence if g.group == ("5",))
    assert level5.rates.counts.accuracy > 0.9


def test_same_seed_same_intervals(simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    answers, table = as_answers(readers), {e.item_id: e for e in key}
    first = score_answers(answers, table, n_resamples=200, seed=5)
    again = score_answers(answers, table, n_resamples=200, seed=5)
    other = score_answers(answers, table, n_resamples=200, seed=6)
    assert first.pooled == again.pooled and first.agreement == again.agreement
    assert first.pooled.accuracy_ci != other.pooled.accuracy_ci


# -- agreement --------------------------------------------------------------------------------


def test_fleiss_kappa_hand_computed() -> None:
    # 4 items, 3 raters: P_i = 1, 1/3, 1/3, 1 -> P = 2/3; p = (1/2, 1/2) -> P_e = 1/2;
    # kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3
    assert fleiss_kappa(np.array([[3, 0], [2, 1], [1, 2], [0, 3]])) == pytest.approx(1 / 3)
    # 3 items, 2 raters: P_i = 1, 0, 1 -> P = 2/3; p = (3/6, 3/6) -> P_e = 1/2 -> kappa = 1/3
    assert fleiss_kappa(np.array([[2, 0], [1, 1], [0, 2]])) == pytest.approx(1 / 3)
    # unequal shares: P = 1, p = (4/6, 2/6) -> P_e = 5/9 -> kappa = (1 - 5/9) / (1 - 5/9) = 1
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [2, 0]])) == pytest.approx(1.0)
    # 4 items, 2 raters: P_i = 1, 1, 1, 0 -> P = 3/4; p = (5/8, 3/8) -> P_e = 34/64;
    # kappa = (3/4 - 34/64) / (1 - 34/64) = (14/64) / (30/64) = 7/15
    assert fleiss_kappa(np.array([[2, 0], [2, 0], [0, 2], [1, 1]])) == pytest.approx(7 / 15)
    # 2 items, 2 raters who always disagree: P = 0, P_e = 1/2 -> kappa = -1
    assert fleiss_kappa(np.array([[1, 1], [1, 1]])) == pytest.approx(-1.0)
    assert math.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))  # one category only


def test_fleiss_kappa_textbook_example() -> None:
    """The 10 subjects x 14 raters x 5 categories example of the Fleiss' kappa literature
    (Wikipedia's worked example): P = 0.378, P_e = 0.213, kappa = 0.210."""
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=0.0005)
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[2, 0], [1, 0]]))  # unequal numbers of raters


def _scored(calls: dict[str, list[str]], key: list[KeyEntry]) -> list[ScoredAnswer]:
    return [
        ScoredAnswer(Answer(r, e.item_id, i, c, 3, "", "", None), e)  # type: ignore[arg-type]
        for r, row in calls.items()
        for i, (e, c) in enumerate(zip(key, row))
    ]


def test_identical_readers_agree_completely() -> None:
    key = make_key(40)
    rng = np.random.default_rng(0)
    calls = [str(c) for c in rng.choice(["real", "synthetic"], size=40)]
    result = agreement(_scored({"a": calls, "b": calls, "c": calls}, key), 200, 0)
    assert result.computable and result.kappa == pytest.approx(1.0)
    assert (result.pairwise_agreement, result.unanimous, result.n_items) == (1.0, 1.0, 40)


def test_independent_readers_agree_at_chance() -> None:
    key = make_key(400)
    rng = np.random.default_rng(1)
    calls = {r: [str(c) for c in rng.choice(["real", "synthetic"], size=400)] for r in "abcd"}
    result = agreement(_scored(calls, key), 400, 0)
    assert abs(result.kappa) < 0.08
    low, high = result.kappa_ci
    assert low < 0.0 < high
    assert result.pairwise_agreement == pytest.approx(0.5, abs=0.05)


def test_agreement_only_on_items_every_reader_answered(scored) -> None:  # type: ignore[no-untyped-def]
    a = scored.score.agreement
    assert a.readers == ("alice", "bob", "carol", "dave") and a.n_items == 16  # dave stopped at 16
    assert -1.0 <= a.kappa <= 1.0 and a.kappa_ci[0] <= a.kappa <= a.kappa_ci[1]


def test_one_reader_kappa_not_computable(simulated, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study, _, _ = simulated
    output = score_study(study, tmp_path / "alice", readers=["alice"], n_resamples=100)
    assert not output.score.agreement.computable
    text = output.files["markdown"].read_text(encoding="utf-8")
    assert "Fleiss' kappa: not computable (needs 2 readers" in text
    data = json.loads(output.files["json"].read_text(encoding="utf-8"))
    assert data["agreement"]["fleiss_kappa"] is None and not data["agreement"]["computable"]
    assert [r["reader"] for r in data["readers"]] == ["alice"]


# -- verdict ----------------------------------------------------------------------------------


def test_verdict_wording(simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    table = {e.item_id: e for e in key}
    perfect = score_answers(as_answers({"alice": readers["alice"]}), table, n_resamples=200)
    assert "above chance (50% lies below the interval)" in verdict(perfect)
    assert verdict(perfect).startswith("Readers called 100% of synthetic tumors synthetic [95% CI")
    always_real = score_answers(as_answers({"bob": readers["bob"]}), table, n_resamples=200)
    text = verdict(always_real)
    assert "called 0% of synthetic tumors synthetic" in text and "100% of real tumors real" in text
    assert "close to chance (50%, inside the interval)" in text
    flipped = {"real": "synthetic", "synthetic": "real"}
    wrong = [(i, flipped[c], k, t) for i, c, k, t in readers["alice"]]
    assert "below chance" in verdict(
        score_answers(as_answers({"x": wrong}), table, n_resamples=200)
    )


def test_verdict_uses_balanced_accuracy_when_the_mix_is_uneven() -> None:
    key = [e for i, e in enumerate(make_key(64)) if e.truth == "synthetic" or i % 8 == 1]
    answers = as_answers({"bob": [(e.item_id, "real", 3, "") for e in key]})
    score = score_answers(answers, {e.item_id: e for e in key}, n_resamples=200)
    text = verdict(score)
    assert "80% of the answers were to synthetic items" in text
    assert "balanced accuracy (mean of sensitivity and specificity) is 50%" in text
    assert "close to chance" in text


# -- files ------------------------------------------------------------------------------------


def test_files_written_and_rerun_overwrites(scored, simulated) -> None:  # type: ignore[no-untyped-def]
    study, _, readers = simulated
    require_module("matplotlib")
    folder = study / "score"
    names = {"score.md", "score.json", "answers.csv", "summary.csv", "score.png"}
    assert {p.name for p in scored.files.values()} == names
    assert {p.name for p in folder.iterdir()} == names  # no temporary files left
    assert (folder / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = (folder / "score.json").read_text(encoding="utf-8")
    score_study(study, n_resamples=RESAMPLES, seed=3)
    assert (folder / "score.json").read_text(encoding="utf-8") == first
    assert {p.name for p in folder.iterdir()} == names
    data = json.loads(first)
    assert data["pooled"]["n"] == sum(len(a) for a in readers.values())
    assert data["verdict"] == verdict(scored.score)
    assert "FreeTumor" in data["reference"] and "13 readers" in data["reference"]
    assert data["excluded"] == [{"reader": "erin", "answers": 0}]


def test_answers_csv_one_row_per_answer(scored, simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    with open(scored.files["answers"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == ANSWER_COLUMNS
    assert len(rows) == sum(len(a) for a in readers.values())
    truth = {e.item_id: e for e in key}
    for row in rows:
        entry = truth[row["item_id"]]
        assert (row["truth"], row["organ"], row["size_class"]) == (
            entry.truth,
            entry.organ,
            entry.size_class,
        )
        assert row["correct"] == str(int(row["call"] == entry.truth))
    comments = {r["comment"] for r in rows if r["reader"] == "alice"}
    assert 'edge, "sharp"\nsecond line' in comments  # quoted, read back whole
    assert "'=HYPERLINK(1)" in comments  # not run as a formula by a spreadsheet


def test_summary_csv_rows(scored) -> None:  # type: ignore[no-untyped-def]
    with open(scored.files["summary"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["reader"] for r in rows] == ["alice", "bob", "carol", "dave", ""]
    assert [r["row"] for r in rows][-1] == "pooled"
    assert rows[0]["sensitivity"] == "1.0000" and rows[1]["sensitivity"] == "0.0000"
    assert rows[-1]["interval"] == "cluster bootstrap" and rows[0]["interval"] == "wilson"
    assert rows[3]["partial"] == "1" and rows[3]["answered"] == "16"


def test_markdown_has_tables_and_definitions(scored) -> None:  # type: ignore[no-untyped-def]
    text = render_markdown(scored.score, "simulated study")
    for heading in ("## Verdict", "## Readers", "## By organ", "## By size class"):
        assert heading in text
    assert "| liver | small* |" in text  # 8 items: marked and "| **pooled** |" in text
    assert "Sensitivity = TP / (TP + FN)" in text and "two-way cluster bootstrap" in text
    assert "51% sensitivity and 61% accuracy" in text


# -- bad input --------------------------------------------------------------------------------


def test_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        score_study(tmp_path)
    assert error.value.where.endswith(STUDY_NAME)
    assert not (tmp_path / "score").exists()


def test_no_answers_database(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s", make_key(8), {}, database=False)
    with pytest.raises(InputError, match="no answers database") as error:
        score_study(study)
    assert error.value.where.endswith(ANSWERS_NAME)
    assert not (study / "score").exists()


def test_unreadable_answers_database(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s", make_key(8), {}, database=False)
    (study / ANSWERS_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError) as error:
        score_study(study)
    assert error.value.where.endswith(ANSWERS_NAME)


def test_no_answers(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s", make_key(8), {"ann": []})
    with pytest.raises(InputError, match="found none") as error:
        score_study(study)
    assert error.value.where.endswith(ANSWERS_NAME)


def test_answers_to_items_not_in_the_key(tmp_path: Path) -> None:
    key = make_key(8)
    stray = "ffffffffffffffff"
    study = write_study(
        tmp_path / "s", key, {"ann": [(key[0].item_id, "real", 2, ""), (stray, "real", 2, "")]}
    )
    with pytest.raises(InputError, match=stray) as error:
        score_study(study)
    assert error.value.where.endswith(ANSWERS_NAME) and KEY_NAME in error.value.message


def test_answers_of_another_study(tmp_path: Path) -> None:
    key = make_key(8)
    study = write_study(tmp_path / "s", key, {"ann": [(key[0].item_id, "real", 2, "")]})
    with closing(connect_answers(study)) as connection:
        connection.execute("INSERT INTO meta VALUES ('study_id', 'another study')")
    with pytest.raises(
        InputError, match="belongs to the study with study_id 'another study'"
    ) as error:
        score_study(study)
    assert error.value.where.endswith(ANSWERS_NAME)


def test_unknown_reader_names(simulated) -> None:  # type: ignore[no-untyped-def]
    study, _, _ = simulated
    with pytest.raises(InputError, match="no reader named 'zoe'") as error:
        score_study(study, study / "never", readers=["alice", "zoe"])
    assert error.value.where.endswith(ANSWERS_NAME)
    assert not (study / "never").exists()


def test_bad_settings(simulated) -> None:  # type: ignore[no-untyped-def]
    _, key, readers = simulated
    answers, table = as_answers(readers), {e.item_id: e for e in key}
    with pytest.raises(InputError, match="--min-answers"):
        score_answers(answers, table, min_answers=0)
    with pytest.raises(InputError, match="--resamples"):
        score_answers(answers, table, n_resamples=10)
    with pytest.raises(InputError, match="at least 100 answer"):
        score_answers(answers, table, min_answers=100)


def test_counts_rates_undefined_without_items() -> None:
    c = Counts(tp=0, fn=0, tn=3, fp=1)
    assert math.isnan(c.sensitivity) and c.specificity == 0.75 and c.accuracy == 0.75


# -- command line -----------------------------------------------------------------------------


def test_cli_scores_and_prints_the_table(
    simulated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    study, _, _ = simulated
    out = tmp_path / "report"
    code = main(
        [
            "turing",
            "score",
            str(study),
            "--out",
            str(out),
            "--resamples",
            "200",
            "--readers",
            "alice",
            "carol",
            "--no-plots",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "| **pooled** |" in printed and "| carol |" in printed and "| bob |" not in printed
    assert "Readers called" in printed
    assert {p.name for p in out.iterdir()} == {
        "score.md",
        "score.json",
        "answers.csv",
        "summary.csv",
    }


def test_cli_bad_input_exits_2(simulated, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    study, _, _ = simulated
    code = main(["turing", "score", str(study), "--readers", "nobody"])
    error = capsys.readouterr().err
    assert code == 2
    assert ANSWERS_NAME in error and "no reader named 'nobody'" in error
