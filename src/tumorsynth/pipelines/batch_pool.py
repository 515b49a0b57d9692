"""Worker processes for a batch, and how a batch stops: workers die with their parent.

A batch with ``--workers N`` runs cases in worker processes while the parent alone writes the
manifest. Killing the parent must not leave workers that finish queued cases nobody records:

- **SIGKILL** (the OOM killer): each worker asks the kernel to SIGKILL it when its parent dies
  (``prctl(PR_SET_PDEATHSIG)`` on Linux) and, as a fallback on other systems and for the instant
  before ``prctl``, a watchdog thread exits the worker once its parent is gone (within a second).
  The next run removes what the killed run left half done (see :mod:`.batch_folder`).
- **SIGINT** (Ctrl-C, sent to the whole process group): workers ignore it; the parent kills them,
  removes unrecorded files and raises ``KeyboardInterrupt`` (the CLI exits 130).
- **SIGTERM** (``kill``, ``timeout``, Slurm): the parent turns it into the same clean stop and
  raises :class:`RunTerminated`, a ``SystemExit`` with status 143 (128 + 15), what the default
  action of SIGTERM reports, but after the folder is consistent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from tumorsynth.errors import TumorsynthError

__all__ = ["RunTerminated", "run_pool", "signals_deferred", "stop_on_sigterm"]

Job = TypeVar("Job")
Result = TypeVar("Result")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_WATCH_S = 0.5


class RunTerminated(SystemExit):
    """SIGTERM stopped the run cleanly (finished variants recorded); exit status 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`RunTerminated` in the main thread for the ``with`` block.

    Elsewhere (a thread, where Python cannot install handlers) SIGTERM keeps its action.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; no second raise
        raise RunTerminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_deferred(*, redeliver: bool = False) -> Iterator[None]:
    """Hold SIGINT and SIGTERM off for the ``with`` block (main thread only).

    Used around work that must not be cut in half: recording a finished case's variants
    (``redeliver=True``: a signal that arrived is acted on right after the block), and making
    the folder consistent after a stop (a second Ctrl-C cannot cut the cleanup short).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def note(signum: int, frame: Any) -> None:
        arrived.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)
        if redeliver:
            for signum in dict.fromkeys(arrived):
                signal.raise_signal(signum)


def run_pool(
    jobs: Sequence[Job],
    work: Callable[[Job], Result],
    workers: int,
    on_result: Callable[[Job, Result], None],
    describe: Callable[[Job], str] = str,
) -> None:
    """Run ``work(job)`` in ``workers`` processes; ``on_result`` runs in this process.

    ``work`` must be picklable (a module-level function or a ``functools.partial`` of one). At
    most ``2 * workers`` jobs are queued at a time. When a job fails (or ``on_result`` does), no
    new job starts, the running ones finish and are handed to ``on_result``, then the first error
    is raised. When this process is interrupted (``KeyboardInterrupt``, :class:`RunTerminated`),
    the workers are killed at once and the interruption is raised once they are gone.

    Raises
    ------
    TumorsynthError
        A worker process died (killed, out of memory); names the jobs not finished.
    """
    coordinator = os.getpid()
    pool = ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(coordinator,)
    )
    futures: dict[Future[Result], Job] = {}
    queue = list(jobs)
    error: BaseException | None = None
    try:
        while futures or (queue and error is None):
            while queue and error is None and len(futures) < 2 * workers:
                job = queue[0]
                try:
                    futures[pool.submit(work, job)] = job
                except BrokenProcessPool:  # a worker died since the last wait
                    error = _worker_died([*futures.values(), *queue], describe)
                    break
                queue.pop(0)
            if not futures:
                break
            ready, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in ready:
                job = futures.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    error = error or _worker_died([job, *futures.values(), *queue], describe)
                    continue
                except Exception as exc:  # noqa: BLE001 - raised below, after the running ones
                    error = error or exc
                    continue
                try:
                    on_result(job, result)
                except Exception as exc:  # noqa: BLE001 - e.g. a full disk: first error wins
                    error = error or exc
    except BaseException:
        _kill_workers(pool)
        raise
    pool.shutdown(wait=True)
    if error is not None:
        raise error


def _worker_died(unfinished: Sequence[Job], describe: Callable[[Job], str]) -> TumorsynthError:
    names = [describe(job) for job in unfinished]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return TumorsynthError(
        "--workers",
        "a worker process died (killed, or out of memory) before these cases were finished: "
        f"{shown}; finished variants are recorded",
        fix="rerun the same command to resume, with fewer --workers if memory ran out",
    )


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL every worker, wait until they are gone, then shut the pool down."""
    # ProcessPoolExecutor has no public way to kill its workers before Python 3.14
    # (kill_workers); its process table is the documented-in-source attribute ``_processes``.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(timeout=10)
    pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(coordinator: int) -> None:
    """Worker start: ignore SIGINT (the parent coordinates) and die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not _alive(parent, coordinator):  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent, coordinator), daemon=True).start()


def _watch(parent: int, coordinator: int) -> None:
    while _alive(parent, coordinator):
        time.sleep(_WATCH_S)
    os._exit(1)


def _alive(parent: int, coordinator: int) -> bool:
    """Whether the worker's parent (a fork server, or the coordinator itself) and the
    coordinating process still run; a dead parent reparents the worker, changing ``getppid``."""
    if os.getppid() != parent:
        return False
    if coordinator == parent:
        return True
    try:
        os.kill(coordinator, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
