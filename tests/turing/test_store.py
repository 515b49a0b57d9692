"""The answers store of the reader study: readers, tokens, orders and the answer rules (on
:func:`turing_helpers.make_study`'s tiny study)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from turing_helpers import make_study

from tumorsynth.errors import InputError
from tumorsynth.turing.layout import (
    ANSWERS_NAME,
    STUDY_NAME,
    read_answers,
)
from tumorsynth.turing.store import AnswerConflict, AnswerStore, reader_order


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    make_study(tmp_path / "study")
    return tmp_path / "study"


def answer_all_in_order(store: AnswerStore, reader, count: int) -> None:
    for _ in range(count):
        current = store.state(reader).current
        assert current is not None
        store.record_answer(reader, current[0], "real", 3)


def test_tokens_are_stored_only_as_hashes(study: Path) -> None:
    store = AnswerStore(study, create=True)
    reader, token = store.add_reader("alice")
    store.close()
    assert len(token) >= 40
    data = (study / ANSWERS_NAME).read_bytes()
    wal = study / f"{ANSWERS_NAME}-wal"
    data += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in data
    with sqlite3.connect(study / ANSWERS_NAME) as connection:
        (stored,) = connection.execute("SELECT token_sha256 FROM readers").fetchone()
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_reader_for_token(study: Path) -> None:
    store = AnswerStore(study, create=True)
    alice, alice_token = store.add_reader("alice")
    bob, bob_token = store.add_reader("bob")
    assert store.reader_for_token(alice_token) == alice
    assert store.reader_for_token(bob_token) == bob
    for forged in ["", None, alice_token[:-1], alice_token + "x", alice_token.upper(), "x" * 5000]:
        assert store.reader_for_token(forged) is None
    # the stored hash itself is not a token
    assert store.reader_for_token(hashlib.sha256(alice_token.encode()).hexdigest()) is None


def test_each_reader_sees_every_item_once_in_their_own_order(study: Path) -> None:
    store = AnswerStore(study, create=True)
    orders = [store.add_reader(name)[0].item_order for name in ("a", "b", "c")]
    items = sorted(store.info.item_ids)
    assert all(sorted(order) == items for order in orders)
    assert len(set(orders)) == 3
    # the order is the documented draw: default_rng([int(study_id, 16), reader_id])
    assert orders[0] == reader_order(store.info.study_id, 1, store.info.item_ids)
    rng = np.random.default_rng([int(store.info.study_id, 16), 2])
    assert orders[1] == tuple(store.info.item_ids[i] for i in rng.permutation(len(items)))


def test_same_study_same_orders(tmp_path: Path) -> None:
    orders = []
    for name in ("one", "two"):
        make_study(tmp_path / name)
        store = AnswerStore(tmp_path / name, create=True)
        orders.append([store.add_reader(r)[0].item_order for r in ("x", "y")])
        store.close()
    assert orders[0] == orders[1]


def test_strict_order_resume_and_persistence(study: Path) -> None:
    store = AnswerStore(study, create=True)
    reader, token = store.add_reader("alice")
    order = reader.item_order
    state = store.state(reader)
    assert (state.answered, state.total, state.current) == (0, 6, (order[0], 0))
    with pytest.raises(AnswerConflict, match="not this reader's current item"):
        store.record_answer(reader, order[1], "real", 3)
    out = store.record_answer(reader, order[0], "synthetic", 5, "rim looks odd", 12.5)
    assert out.stored and out.state.current == (order[1], 1) and out.state.answered == 1
    store.close()

    again = AnswerStore(study)  # a new store on the same folder: the answer is there
    reader = again.reader_for_token(token)
    assert reader is not None
    assert again.state(reader).current == (order[1], 1)
    (answer,) = read_answers(study)
    assert (answer.reader, answer.item_id, answer.position) == ("alice", order[0], 0)
    assert (answer.call, answer.confidence, answer.comment) == ("synthetic", 5, "rim looks odd")
    assert answer.seconds_viewed == 12.5 and answer.answered_at.endswith("+00:00")
    answer_all_in_order(again, reader, 5)
    final = again.state(reader)
    assert final.done and final.current is None and final.answered == 6
    assert [a.item_id for a in read_answers(study)] == list(order)


def test_identical_retry_is_idempotent_and_answers_are_final(study: Path) -> None:
    store = AnswerStore(study, create=True)
    reader, _ = store.add_reader("alice")
    first = reader.item_order[0]
    assert store.record_answer(reader, first, "real", 4, "ok", 3.0).stored
    retry = store.record_answer(reader, first, "real", 4, "ok", 9.0)  # time differs: same answer
    assert not retry.stored and retry.state.current == (reader.item_order[1], 1)
    for call, confidence, comment in [("synthetic", 4, "ok"), ("real", 5, "ok"), ("real", 4, "")]:
        with pytest.raises(AnswerConflict, match="answers are final"):
            store.record_answer(reader, first, call, confidence, comment)
    assert len(read_answers(study)) == 1
    assert read_answers(study)[0].seconds_viewed == 3.0


def test_concurrent_identical_answers_store_one_row(study: Path) -> None:
    store = AnswerStore(study, create=True)
    reader, _ = store.add_reader("alice")
    first = reader.item_order[0]
    results: list[bool] = []
    errors: list[BaseException] = []

    def post() -> None:
        try:
            results.append(store.record_answer(reader, first, "real", 2).stored)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [False] * 7 + [True]
    assert len(read_answers(study)) == 1


def test_bad_values_are_refused(study: Path) -> None:
    store = AnswerStore(study, create=True)
    reader, _ = store.add_reader("alice")
    first = reader.item_order[0]
    for call, confidence, comment, seconds in [
        ("maybe", 3, "", None),
        ("real", 0, "", None),
        ("real", 6, "", None),
        ("real", True, "", None),
        ("real", 3, "x" * 2001, None),
        ("real", 3, "", -1.0),
        ("real", 3, "", float("nan")),
    ]:
        with pytest.raises(ValueError):
            store.record_answer(reader, first, call, confidence, comment, seconds)
    with pytest.raises(KeyError):
        store.record_answer(reader, "0" * 16, "real", 3)
    assert read_answers(study) == []


def test_reader_names_and_progress(study: Path) -> None:
    store = AnswerStore(study, create=True)
    alice, _ = store.add_reader(" alice ")
    assert alice.name == "alice"
    for bad in ["", "   ", "a\nb", "x" * 101]:
        with pytest.raises(InputError, match="printable"):
            store.add_reader(bad)
    with pytest.raises(InputError, match="already a reader"):
        store.add_reader("alice")
    store.add_reader("bob")
    answer_all_in_order(store, alice, 2)
    progress = store.readers()
    assert [(p.name, p.answered, p.total) for p in progress] == [("alice", 2, 6), ("bob", 0, 6)]
    assert progress[0].last_answer_at is not None and progress[1].last_answer_at is None


def test_database_is_bound_to_its_study(study: Path, tmp_path: Path) -> None:
    AnswerStore(study, create=True).close()
    with sqlite3.connect(study / ANSWERS_NAME) as connection:
        assert connection.execute("SELECT value FROM meta").fetchall() == [("c0ffee00d15ea5e5",)]
    other = tmp_path / "other"
    make_study(other, study_id="0123456789abcdef")
    (other / ANSWERS_NAME).write_bytes((study / ANSWERS_NAME).read_bytes())
    with pytest.raises(InputError, match="belongs to the study with study_id 'c0ffee00d15ea5e5'"):
        AnswerStore(other)


def test_missing_or_broken_inputs_name_the_file(tmp_path: Path, study: Path) -> None:
    with pytest.raises(InputError, match=STUDY_NAME):
        AnswerStore(tmp_path / "nowhere", create=True)
    with pytest.raises(InputError, match="no answers database"):
        AnswerStore(study)  # no readers added yet
    (study / ANSWERS_NAME).write_bytes(b"not a database" * 100)
    with pytest.raises(InputError, match=ANSWERS_NAME):
        AnswerStore(study)
    info = json.loads((study / STUDY_NAME).read_text(encoding="utf-8"))
    info["study_id"] = ""
    (study / STUDY_NAME).write_text(json.dumps(info))
    with pytest.raises(InputError, match="study_id"):
        AnswerStore(study, create=True)
