"""Load: 20 readers answer 100 items each at once against a real ``tumorsynth turing serve``
process on 127.0.0.1; the server is killed (SIGKILL) and restarted in the middle. Every answer the
server acknowledged must be in the database, once, with the values sent; no reader has a gap or a
duplicate in their order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from turing_helpers import write_tiny_study

from tumorsynth.turing.layout import connect_answers, read_answers
from tumorsynth.turing.simulate import ScriptedReader, ServerProcess, run_readers
from tumorsynth.turing.store import AnswerStore

READERS = 20
ITEMS = 100


@pytest.mark.slow
def test_twenty_readers_lose_nothing_when_the_server_is_killed(tmp_path: Path) -> None:
    study = tmp_path / "study"
    _, key = write_tiny_study(study, n_items=ITEMS, shape=(4, 8, 8))
    store = AnswerStore(study, create=True)
    readers = [
        ScriptedReader(f"reader{i:02d}", store.add_reader(f"reader{i:02d}")[1], 0.6, 0.7)
        for i in range(READERS)
    ]
    server = ServerProcess(study, log=tmp_path / "server.log").start()
    restarted = threading.Event()
    kills: list[int] = []

    def kill_once(total: int) -> None:
        if total >= READERS * ITEMS // 2 and not kills:
            kills.append(total)
            threading.Thread(target=restart, daemon=True).start()

    def restart() -> None:
        server.kill()
        server.start()  # the same port: the readers' retries find it again
        restarted.set()

    try:
        result = run_readers(
            server.url, readers, key, seed=3, deadline_s=240.0, on_answer=kill_once
        )
        assert restarted.wait(60), "the server was not restarted"
    finally:
        server.stop()

    assert kills and result.retries > 0  # the kill happened while readers were answering
    assert result.finished == {r.name for r in readers}
    assert len(result.acknowledged) == READERS * ITEMS
    stored = {(a.reader, a.item_id): (a.call, a.confidence) for a in read_answers(study)}
    assert stored == result.acknowledged  # nothing acknowledged lost, nothing else stored
    with connect_answers(study) as connection:
        rows = connection.execute(
            "SELECT reader_id, COUNT(*), COUNT(DISTINCT item_id), MIN(position), MAX(position) "
            "FROM answers GROUP BY reader_id"
        ).fetchall()
    assert rows and all(row[1:] == (ITEMS, ITEMS, 0, ITEMS - 1) for row in rows)
