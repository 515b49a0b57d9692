"""The reader study on disk: what ``turing create`` writes, ``serve`` reads and ``score`` joins.

A study folder::

    STUDY/
      study.json        public: what a reader's browser may learn (no classes, no sources)
      items/<id>.raw    one volume per item: int16 little-endian, C order, axes (z, y, x) in LPS
                        (x grows to the patient's left, y to posterior, z to superior); every item
                        has the same shape and spacing, so no file size or header tells items apart
      key/key.json      the answer key and provenance (truth, organ, size class, source scan):
                        the operator's, never served
      key/items.png     the operator's montage of every item's middle slice, truth written on it
      answers.sqlite    readers (hashed tokens, their item order) and answers (SQLite, WAL)

Item ids are random hex strings drawn from the study seed: the same seed gives the same study,
and an id says nothing about its item. The server reaches files only through :func:`item_path`
with an id it found in ``study.json``; nothing a request carries becomes a path.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tumorsynth.errors import InputError

__all__ = [
    "ANSWERS_NAME",
    "ANSWERS_SCHEMA",
    "DEFAULT_PRESETS",
    "FORMAT",
    "ITEM_ID",
    "KEY_NAME",
    "STUDY_NAME",
    "TRUTHS",
    "Answer",
    "KeyEntry",
    "StudyInfo",
    "Truth",
    "connect_answers",
    "item_path",
    "read_answers",
    "read_key",
    "read_study",
]

FORMAT = "tumorsynth-turing/1"
STUDY_NAME = "study.json"
KEY_NAME = "key/key.json"
ANSWERS_NAME = "answers.sqlite"
#: An item id: 16 lowercase hex digits (64 random bits).
ITEM_ID = re.compile(r"[0-9a-f]{16}")
#: Window presets (name -> (width, level) in HU) every study offers.
DEFAULT_PRESETS: dict[str, tuple[float, float]] = {"abdomen": (400.0, 40.0), "liver": (150.0, 60.0)}

Truth = Literal["real", "synthetic"]
#: The two truths, real first.
TRUTHS: tuple[Truth, Truth] = ("real", "synthetic")


@dataclass(frozen=True)
class StudyInfo:
    """``study.json``: everything about a study that readers' browsers may see.

    ``shape`` is (z, y, x) voxels of every item, ``spacing_mm`` (z, y, x) in mm.
    """

    title: str
    item_ids: tuple[str, ...]
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    presets: Mapping[str, tuple[float, float]] = field(default_factory=lambda: DEFAULT_PRESETS)
    default_preset: str = "abdomen"
    format: str = FORMAT
    study_id: str = ""  # random, ties answers.sqlite to this study

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["presets"] = {k: list(v) for k, v in self.presets.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyInfo:
        return cls(
            title=str(data["title"]),
            item_ids=tuple(str(i) for i in data["item_ids"]),
            shape=tuple(int(n) for n in data["shape"]),  # type: ignore[arg-type]
            spacing_mm=tuple(float(s) for s in data["spacing_mm"]),  # type: ignore[arg-type]
            presets={str(k): (float(v[0]), float(v[1])) for k, v in data["presets"].items()},
            default_preset=str(data["default_preset"]),
            format=str(data["format"]),
            study_id=str(data["study_id"]),
        )

    @property
    def item_bytes(self) -> int:
        z, y, x = self.shape
        return 2 * z * y * x


@dataclass(frozen=True)
class KeyEntry:
    """One item of the answer key: its truth and where it came from."""

    item_id: str
    truth: Truth
    organ: str
    size_class: str  # tiny, small, medium, large (by equivalent diameter, organ profile)
    diameter_mm: float  # equivalent diameter of the tumor component
    volume_ml: float
    source_image: str
    source_label: str
    component: int  # 1-based index of the tumor's 26-connected component in the label
    center_vox: tuple[int, int, int]  # the crop's centre in the source image's voxel grid
    generator: str = ""  # synthetic items: the generator that made it ("" unknown / real)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyEntry:
        values = dict(data)
        values["center_vox"] = tuple(int(v) for v in values["center_vox"])
        return cls(**values)


@dataclass(frozen=True)
class Answer:
    """One reader's answer to one item, as stored."""

    reader: str  # the reader's name
    item_id: str
    position: int  # 0-based place of the item in this reader's order
    call: Truth
    confidence: int  # 1 (guess) .. 5 (certain)
    comment: str
    answered_at: str  # ISO 8601, UTC
    seconds_viewed: float | None


#: answers.sqlite. Tokens are stored as sha256 hex (tokens are 32 random bytes, so no salt is
#: needed); ``item_order`` is the JSON list of item ids in the order this reader sees them.
ANSWERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS readers (
    reader_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    item_order TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    reader_id INTEGER NOT NULL REFERENCES readers(reader_id),
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    call TEXT NOT NULL CHECK (call IN ('real', 'synthetic')),
    confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
    comment TEXT NOT NULL DEFAULT '',
    answered_at TEXT NOT NULL,
    seconds_viewed REAL,
    PRIMARY KEY (reader_id, item_id)
);
"""


def read_study(study: str | Path) -> StudyInfo:
    """``study.json`` of the study folder ``study``; InputError naming the file if it is not one."""
    path = Path(study) / STUDY_NAME
    data = _read_json(path, "a reader study's study.json (written by `tumorsynth turing create`)")
    if data.get("format") != FORMAT:
        raise InputError(str(path), f"expected format {FORMAT!r}, found {data.get('format')!r}")
    try:
        info = StudyInfo.from_dict(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(str(path), f"is not a complete study.json ({exc!r})") from exc
    bad = [i for i in info.item_ids if not ITEM_ID.fullmatch(i)]
    if bad or len(set(info.item_ids)) != len(info.item_ids):
        raise InputError(str(path), f"item ids must be unique 16-hex-digit ids, found {bad[:3]}")
    return info


def read_key(study: str | Path) -> dict[str, KeyEntry]:
    """The answer key of ``study``: item id -> :class:`KeyEntry`."""
    path = Path(study) / KEY_NAME
    data = _read_json(path, "the answer key of a reader study")
    try:
        return {e["item_id"]: KeyEntry.from_dict(e) for e in data["items"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(str(path), f"is not a complete answer key ({exc!r})") from exc


def item_path(study: str | Path, info: StudyInfo, item_id: str) -> Path:
    """The volume file of ``item_id``; KeyError unless the id is one of the study's items (so a
    request can never name another file)."""
    if item_id not in info.item_ids:
        raise KeyError(item_id)
    return Path(study) / "items" / f"{item_id}.raw"


def connect_answers(study: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """A connection to ``answers.sqlite`` in WAL mode with full fsync (an acknowledged answer is
    on disk); the schema is created when ``create``."""
    path = Path(study) / ANSWERS_NAME
    if not create and not path.is_file():
        raise InputError(
            str(path),
            "no answers database (no readers yet)",
            fix="add readers with `tumorsynth turing readers add STUDY --name NAME`",
        )
    connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    if create:
        connection.executescript(ANSWERS_SCHEMA)
    return connection


def read_answers(study: str | Path) -> list[Answer]:
    """Every stored answer of ``study``, by reader name and position."""
    with closing(connect_answers(study)) as connection:
        rows = connection.execute(
            "SELECT r.name, a.item_id, a.position, a.call, a.confidence, a.comment, "
            "a.answered_at, a.seconds_viewed FROM answers a JOIN readers r USING (reader_id) "
            "ORDER BY r.name, a.position"
        ).fetchall()
    return [Answer(*row) for row in rows]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(str(path), f"expected {what}, found no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), f"expected {what}, found unreadable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(str(path), f"expected {what} (a JSON object), found {type(data).__name__}")
    return data
