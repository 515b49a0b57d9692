"""The readers and their answers: ``answers.sqlite`` of a study folder, as the web app uses it.

One :class:`AnswerStore` per study. It binds the database to ``study.json`` (a ``meta`` row holds
the study's ``study_id``, so answers of one study are never mixed into another), adds readers
(each with a private token, stored only as its sha256, and a random order of all items) and
records answers under the study's rules: a reader answers items strictly in their own order, an
identical retry is answered as if it were new (no second row), and an answer is final.

Every write is one ``BEGIN IMMEDIATE ... COMMIT`` transaction on a connection with
``synchronous=FULL`` (:func:`~tumorsynth.turing.layout.connect_answers`): when a method returns,
the answer is on disk. The store is safe to use from many threads (each thread gets its own
connection) and from several processes (SQLite's locks; a busy writer waits up to 30 s).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.turing.layout import (
    ANSWERS_NAME,
    STUDY_NAME,
    StudyInfo,
    connect_answers,
    read_study,
)

__all__ = [
    "CALLS",
    "MAX_COMMENT_CHARS",
    "AnswerConflict",
    "AnswerOutput",
    "AnswerStore",
    "Reader",
    "ReaderProgress",
    "ReaderState",
    "reader_order",
    "token_hash",
]

CALLS = ("real", "synthetic")
MAX_COMMENT_CHARS = 2000
MAX_NAME_CHARS = 100
#: Longest token looked up (``secrets.token_urlsafe(32)`` is 43 characters).
MAX_TOKEN_CHARS = 256


class AnswerConflict(Exception):
    """An answer the study's rules refuse: not the reader's current item, or a different answer to
    an item already answered (answers are final). The web app answers it with 409."""


@dataclass(frozen=True)
class Reader:
    """A reader as stored: ``item_order`` is every item id of the study, in this reader's order."""

    reader_id: int
    name: str
    item_order: tuple[str, ...]
    created_at: str


@dataclass(frozen=True)
class ReaderState:
    """Where a reader stands: ``answered`` of ``total`` items, ``current`` the item to answer next
    with its 0-based ``position`` in the reader's order (``None`` once every item is answered)."""

    reader: str
    total: int
    answered: int
    current: tuple[str, int] | None

    @property
    def done(self) -> bool:
        return self.current is None


@dataclass(frozen=True)
class ReaderProgress:
    """One line of ``turing readers list``."""

    name: str
    answered: int
    total: int
    created_at: str
    last_answer_at: str | None


@dataclass(frozen=True)
class AnswerOutput:
    """What :meth:`AnswerStore.record_answer` did: ``stored`` False for an identical retry of an
    answer already stored (nothing written); ``state`` is the reader's state afterwards."""

    stored: bool
    state: ReaderState


def reader_order(study_id: str, reader_id: int, item_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The order in which reader ``reader_id`` sees the items: a permutation drawn from
    ``numpy.random.default_rng([int(study_id, 16), reader_id])``.

    The study's own seed stays in the key (it would tell how items were drawn), so the random
    ``study_id`` of ``study.json`` seeds the orders: the same study and reader id give the same
    order, different readers get independent orders. A ``study_id`` that is not hexadecimal is
    read through its sha256.

    Examples
    --------
    >>> ids = ("a" * 16, "b" * 16, "c" * 16, "d" * 16)
    >>> sorted(reader_order("5eed", 1, ids)) == sorted(ids)
    True
    >>> reader_order("5eed", 1, ids) == reader_order("5eed", 1, ids)
    True
    """
    try:
        entropy = int(study_id, 16)
    except ValueError:
        entropy = int(hashlib.sha256(study_id.encode("utf-8")).hexdigest(), 16)
    rng = np.random.default_rng([entropy, int(reader_id)])
    return tuple(item_ids[i] for i in rng.permutation(len(item_ids)))


def token_hash(token: str) -> str:
    """The stored form of a reader's token: its sha256, hex (tokens are 32 random bytes)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AnswerStore:
    """``answers.sqlite`` of the study folder ``study``.

    Parameters
    ----------
    study
        The study folder (``study.json`` is read once, here).
    create
        Create the database when it does not exist yet (``turing readers add``); without it a
        study with no database is an :class:`~tumorsynth.errors.InputError`.

    Raises
    ------
    InputError
        ``study.json`` is missing or broken, it has no ``study_id``, or the database belongs to
        another study.
    """

    def __init__(self, study: str | Path, *, create: bool = False) -> None:
        self.study = Path(study)
        self.info: StudyInfo = read_study(self.study)
        if not self.info.study_id:
            raise InputError(
                str(self.study / STUDY_NAME),
                "expected a study_id (it ties answers.sqlite to this study), found none",
                fix="create the study again with `tumorsynth turing create`",
            )
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._bind(create)

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect_answers(self.study)
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE takes the write lock before anything is read,
        so two writers never decide on the same stale state; COMMIT on success (fsynced), else
        ROLLBACK."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (each thread's)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.close()
            except sqlite3.ProgrammingError:  # made in a thread that is gone: SQLite closes it
                pass
        self._local = threading.local()

    def _bind(self, create: bool) -> None:
        path = self.study / ANSWERS_NAME
        try:
            connect_answers(self.study, create=create).close()  # the schema, when create
            with self._write() as connection:
                row = connection.execute("SELECT value FROM meta WHERE key = 'study_id'").fetchone()
                if row is None:
                    connection.execute(
                        "INSERT INTO meta (key, value) VALUES ('study_id', ?)",
                        (self.info.study_id,),
                    )
                elif row[0] != self.info.study_id:
                    raise InputError(
                        str(path),
                        f"belongs to the study with study_id {row[0]!r}, but {STUDY_NAME} here has "
                        f"study_id {self.info.study_id!r}",
                        fix="keep each study's answers.sqlite in its own folder",
                    )
        except sqlite3.DatabaseError as exc:
            raise InputError(str(path), f"expected a readable answers database ({exc})") from exc

    # -- readers -----------------------------------------------------------------------------

    def add_reader(self, name: str) -> tuple[Reader, str]:
        """Add a reader; returns the reader and their token (shown once: only its hash is kept).

        Raises
        ------
        InputError
            ``name`` is empty, too long, has control characters or is taken.
        """
        name = str(name).strip()
        where = f"reader name {name!r}"
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise InputError(
                where, f"expected 1 to {MAX_NAME_CHARS} printable characters, found {len(name)}"
            )
        token = secrets.token_urlsafe(32)
        created_at = _now()
        with self._write() as connection:
            if connection.execute("SELECT 1 FROM readers WHERE name = ?", (name,)).fetchone():
                raise InputError(
                    where, "is already a reader of this study", fix="pick another name"
                )
            (last,) = connection.execute("SELECT MAX(reader_id) FROM readers").fetchone()
            reader_id = int(last or 0) + 1
            order = reader_order(self.info.study_id, reader_id, self.info.item_ids)
            connection.execute(
                "INSERT INTO readers (reader_id, name, token_sha256, created_at, item_order) "
                "VALUES (?, ?, ?, ?, ?)",
                (reader_id, name, token_hash(token), created_at, json.dumps(list(order))),
            )
        return Reader(reader_id, name, order, created_at), token

    def readers(self) -> list[ReaderProgress]:
        """Every reader with their progress, in the order they were added."""
        rows = (
            self._connection()
            .execute(
                "SELECT r.name, r.created_at, r.item_order, COUNT(a.item_id), MAX(a.answered_at) "
                "FROM readers r LEFT JOIN answers a USING (reader_id) "
                "GROUP BY r.reader_id ORDER BY r.reader_id"
            )
            .fetchall()
        )
        return [
            ReaderProgress(name, int(count), len(json.loads(order)), created, last)
            for name, created, order, count, last in rows
        ]

    def reader_for_token(self, token: str | None) -> Reader | None:
        """The reader whose token this is, or ``None``. The lookup is by the token's sha256 (a
        database index, no timing tells how much of a guess was right); the hash found is
        compared again with :func:`hmac.compare_digest`."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = token_hash(token)
        row = (
            self._connection()
            .execute(
                "SELECT reader_id, name, item_order, created_at, token_sha256 FROM readers "
                "WHERE token_sha256 = ?",
                (digest,),
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(str(row[4]), digest):
            return None
        return Reader(int(row[0]), str(row[1]), tuple(json.loads(row[2])), str(row[3]))

    # -- answers -----------------------------------------------------------------------------

    def state(self, reader: Reader) -> ReaderState:
        """Where ``reader`` stands now."""
        return self._state(self._connection(), reader)

    def _state(self, connection: sqlite3.Connection, reader: Reader) -> ReaderState:
        answered = {
            item
            for (item,) in connection.execute(
                "SELECT item_id FROM answers WHERE reader_id = ?", (reader.reader_id,)
            )
        }
        current = next(
            ((item, i) for i, item in enumerate(reader.item_order) if item not in answered), None
        )
        return ReaderState(reader.name, len(reader.item_order), len(answered), current)

    def record_answer(
        self,
        reader: Reader,
        item_id: str,
        call: str,
        confidence: int,
        comment: str = "",
        seconds_viewed: float | None = None,
    ) -> AnswerOutput:
        """Store ``reader``'s answer to ``item_id``, committed to disk before this returns.

        Parameters
        ----------
        call
            ``"real"`` or ``"synthetic"``.
        confidence
            1 (a guess) to 5 (certain).
        comment
            Free text, at most 2000 characters.
        seconds_viewed
            How long the item was on screen, seconds (kept as a measurement: a retry that differs
            only in it is still the same answer).

        Raises
        ------
        ValueError
            A value out of range.
        KeyError
            ``item_id`` is not an item of the study.
        AnswerConflict
            ``item_id`` is not the reader's current item, or it was answered differently.
        """
        call, confidence, comment, seconds = _checked(call, confidence, comment, seconds_viewed)
        if item_id not in reader.item_order:
            raise KeyError(item_id)
        with self._write() as connection:
            row = connection.execute(
                "SELECT call, confidence, comment FROM answers WHERE reader_id = ? AND item_id = ?",
                (reader.reader_id, item_id),
            ).fetchone()
            if row is not None:
                if tuple(row) != (call, confidence, comment):
                    raise AnswerConflict(
                        f"item {item_id} was already answered ({row[0]}, confidence {row[1]}); "
                        "answers are final"
                    )
                return AnswerOutput(False, self._state(connection, reader))
            state = self._state(connection, reader)
            if state.current is None or state.current[0] != item_id:
                raise AnswerConflict(f"item {item_id} is not this reader's current item")
            connection.execute(
                "INSERT INTO answers (reader_id, item_id, position, call, confidence, comment, "
                "answered_at, seconds_viewed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reader.reader_id,
                    item_id,
                    state.current[1],
                    call,
                    confidence,
                    comment,
                    _now(),
                    seconds,
                ),
            )
            after = self._state(connection, reader)
        return AnswerOutput(True, after)


def _checked(
    call: str, confidence: int, comment: str, seconds_viewed: float | None
) -> tuple[str, int, str, float | None]:
    if call not in CALLS:
        raise ValueError(f"call must be one of {CALLS}, found {call!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, int) or not 1 <= confidence <= 5:
        raise ValueError(f"confidence must be an integer 1 to 5, found {confidence!r}")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"comment must be text of at most {MAX_COMMENT_CHARS} characters")
    if seconds_viewed is None:
        return call, confidence, comment, None
    seconds = float(seconds_viewed)
    if not 0.0 <= seconds < 1e7:  # also refuses NaN
        raise ValueError(f"seconds_viewed must be a duration in seconds, found {seconds_viewed!r}")
    return call, confidence, comment, seconds


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
