"""Scripted readers: dry runs and load tests of a served reader study.

Before real readers come, an operator can check a study end to end with readers whose behaviour
is known (each calls a synthetic tumor synthetic with probability ``sensitivity`` and a real one
real with probability ``specificity``), so ``turing score`` must find those numbers back. The
same readers, many at once, are the load test: every answer the server acknowledged must be in
the database exactly once, even when the server is killed and restarted in the middle (a reader
whose request failed retries the same answer; the server takes an identical retry once).

Readers talk HTTP to the server like a browser's script does (``Authorization: Bearer`` and the
``X-Tumorsynth`` header), with the standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from tumorsynth.turing.layout import KeyEntry

__all__ = ["ScriptedReader", "ServerProcess", "SimulationResult", "run_readers"]

#: Seconds a reader waits between tries while the server is down.
RETRY_PAUSE_S = 0.05


@dataclass(frozen=True)
class ScriptedReader:
    """A reader with known behaviour: ``token`` is the one ``turing readers add`` printed."""

    name: str
    token: str
    sensitivity: float = 0.5  # P(call synthetic | synthetic)
    specificity: float = 0.5  # P(call real | real)


@dataclass
class SimulationResult:
    """What the server acknowledged, and how fast."""

    #: (reader name, item id) -> (call, confidence), for every answer answered with 200.
    acknowledged: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    #: Seconds per acknowledged answer (the POST alone), in completion order.
    latencies_s: list[float] = field(default_factory=list)
    #: Requests that failed (connection refused or reset, 5xx) and were tried again.
    retries: int = 0
    seconds: float = 0.0
    #: Readers who answered every item.
    finished: set[str] = field(default_factory=set)
    #: Bytes of item volumes downloaded (with ``fetch_items``).
    bytes_fetched: int = 0

    @property
    def answers_per_s(self) -> float:
        return len(self.acknowledged) / max(self.seconds, 1e-9)


def run_readers(
    base_url: str,
    readers: Sequence[ScriptedReader],
    key: Mapping[str, KeyEntry],
    *,
    seed: int = 0,
    max_answers: int | None = None,
    deadline_s: float = 300.0,
    on_answer: Callable[[int], None] | None = None,
    fetch_items: bool = False,
) -> SimulationResult:
    """Let every reader of ``readers`` answer the study served at ``base_url``, all at once.

    Parameters
    ----------
    base_url
        ``http://127.0.0.1:PORT``.
    key
        The study's answer key (the readers' behaviour depends on the truth).
    seed
        Draws of reader ``i`` come from ``default_rng([seed, i])``.
    max_answers
        Answers per reader (None: until the study is done for them).
    deadline_s
        Every reader stops by then, finished or not.
    on_answer
        Called with the running total after each acknowledged answer (from the readers'
        threads), e.g. to kill the server at some point.
    fetch_items
        Download each item's volume before answering it, as a browser does.
    """
    result = SimulationResult()
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + deadline_s

    def read(index: int, reader: ScriptedReader) -> None:
        client = _Client(base_url, reader.token, deadline)
        try:
            answer(index, reader, client)
        finally:
            client.close()

    def answer(index: int, reader: ScriptedReader, client: _Client) -> None:
        rng = np.random.default_rng([seed, index])
        answered = 0
        while max_answers is None or answered < max_answers:
            state, failures = client.request("GET", "/api/state")
            current = state.get("current")
            if state.get("done") or current is None:
                with lock:
                    result.finished.add(reader.name)
                    result.retries += failures
                return
            item = str(current["item_id"])
            fetched, more = (
                client.request("GET", f"/api/items/{item}", raw=True) if fetch_items else (b"", 0)
            )
            failures += more
            truth = key[item].truth
            right = rng.random() < (
                reader.sensitivity if truth == "synthetic" else reader.specificity
            )
            call = truth if right else ("real" if truth == "synthetic" else "synthetic")
            confidence = int(rng.integers(1, 6))
            body = {"item_id": item, "call": call, "confidence": confidence, "comment": ""}
            sent = time.monotonic()
            _, more = client.request("POST", "/api/answers", body)
            took = time.monotonic() - sent
            answered += 1
            with lock:
                result.acknowledged[(reader.name, item)] = (call, confidence)
                result.latencies_s.append(took)
                result.retries += failures + more
                result.bytes_fetched += len(fetched)
                total = len(result.acknowledged)
            if on_answer is not None:
                on_answer(total)

    with ThreadPoolExecutor(max_workers=max(1, len(readers))) as pool:
        for future in [pool.submit(read, i, r) for i, r in enumerate(readers)]:
            future.result()
    result.seconds = time.monotonic() - start
    return result


class _Client:
    """One reader's keep-alive connection; a request is repeated until it is answered."""

    def __init__(self, base_url: str, token: str, deadline: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = {"Authorization": f"Bearer {token}", "X-Tumorsynth": "1"}
        self.deadline = deadline
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, raw: bool = False
    ) -> tuple[Any, int]:
        """The JSON answer (``raw``: the bytes) of a 200 response and how many tries failed
        before it."""
        failures = 0
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{method} {path}: no answer before the deadline")
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                failures += 1
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status >= 500:
                failures += 1
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:300]!r}")
            return (data if raw else json.loads(data)), failures

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class ServerProcess:
    """``tumorsynth turing serve STUDY`` as a child process on 127.0.0.1, for tests and benchmarks.

    ``start()`` waits for the line that names the URL; ``kill()`` is SIGKILL (nothing flushed,
    no shutdown handler runs); ``start()`` again serves the same study on the same port.
    """

    URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")

    def __init__(self, study: str | Path, port: int = 0, *, log: Path | None = None) -> None:
        self.study = Path(study)
        self.port = port
        self.log = log
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        argv = [sys.executable, "-m", "tumorsynth.cli.main", "turing", "serve", str(self.study)]
        argv += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break  # the server exited
            lines.append(line)
            found = self.URL.search(line)
            if found:
                self.port = int(found.group(1))
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError("the reader-study server did not start:\n" + "".join(lines[-30:]))

    def _drain(self) -> None:
        process = self.process
        if process is None or process.stdout is None:
            return
        with process.stdout:
            for line in process.stdout:
                if self.log is not None:
                    with self.log.open("a", encoding="utf-8") as handle:
                        handle.write(line)

    def kill(self) -> None:
        """SIGKILL: the hardest stop there is."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
