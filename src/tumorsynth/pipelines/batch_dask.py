"""Batch synthesis on a Dask cluster: ``--dask local:N`` or ``--dask tcp://HOST:PORT``.

:class:`DaskExecutor` runs a batch's case jobs on the workers of a ``dask.distributed`` cluster
the way :func:`~tumorsynth.pipelines.batch_pool.run_pool` runs them in local processes, so
:func:`~tumorsynth.pipelines.batch.run_batch` keeps every guarantee whatever the executor:

- **One writer of the manifest.** A job writes its variants' files into the output folder (which
  every worker must see at the same path) and returns their records; this process alone appends
  them to ``manifest.jsonl``. Only records travel through the scheduler, never volumes.
- **Results do not depend on the executor**: every variant's seed derives from the run seed, the
  case id and the variant number, so a case gives the same bytes on any worker.
- **A worker that dies** (killed, out of memory) is the scheduler's business: it reruns the
  worker's unfinished cases on other workers (Dask's ``distributed.scheduler.allowed-failures``,
  3 by default, counts how often one case may take a worker down before it fails with
  ``KilledWorker``, reported here with its case). A rerun case writes its files again, atomically,
  with the same bytes; temporary files of the dead writer are removed at the end of the run.
- **The first error** stops new cases from starting; the running ones finish and are recorded,
  then the error is raised. At most two jobs per worker thread are handed to the scheduler at a
  time, so "running" means a bounded number of cases.
- **A stop** (Ctrl-C, SIGTERM) cancels the cases not started. A local cluster is closed (its
  workers are killed after a few seconds). On a remote cluster a running Python task cannot be
  killed: this process waits (at most :data:`DRAIN_S`, Ctrl-C again to stop waiting) until the
  workers have finished the cases they were running, so that the folder it then cleans up keeps
  exactly the recorded variants. Local workers also die with this process, however it dies.

Jobs are submitted with ``pure=False`` (a fresh key per submission: a resumed run must never
reuse a result the scheduler still holds from an earlier client) and without ``retries`` (a case
that raises is an error to report, not to repeat).

Examples
--------
>>> parse_dask_target("local:4")
DaskTarget(local_workers=4, address=None)
>>> parse_dask_target("tcp://10.0.0.5:8786")
DaskTarget(local_workers=None, address='tcp://10.0.0.5:8786')
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from tumorsynth import __version__
from tumorsynth.errors import InputError, TumorsynthError

__all__ = [
    "DRAIN_S",
    "DaskExecutor",
    "DaskTarget",
    "check_dask",
    "dask_executor",
    "parse_dask_target",
]

Job = TypeVar("Job")
Result = TypeVar("Result")

FLAG = "--dask"
#: Seconds to wait for a scheduler to answer, and for it to have a worker.
CONNECT_S = 20.0
#: After a stop, seconds to wait at most for a remote cluster's running cases to finish.
DRAIN_S = 120.0
_POLL_S = 0.2
_EXPECTED = (
    "local:N (N >= 1 worker processes on this host) or tcp://HOST:PORT (a running scheduler)"
)
_LOCAL = re.compile(r"local:(\d+)")
_REMOTE = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})")


@dataclass(frozen=True)
class DaskTarget:
    """Where a batch runs: a local cluster of ``local_workers`` processes, or a scheduler's
    ``address``."""

    local_workers: int | None = None
    address: str | None = None


def parse_dask_target(value: str) -> DaskTarget:
    """Parse a ``--dask`` value; an :class:`InputError` naming ``--dask`` when malformed."""
    text = str(value).strip()
    local, remote = _LOCAL.fullmatch(text), _REMOTE.fullmatch(text)
    if local and int(local.group(1)) >= 1:
        return DaskTarget(local_workers=int(local.group(1)))
    if remote and 0 < int(remote.group(2)) < 65536:
        return DaskTarget(address=text)
    raise InputError(FLAG, f"expected {_EXPECTED}, found {value!r}")


def check_dask(value: str, workers: int = 1) -> DaskTarget:
    """Check a ``--dask`` value, that ``dask.distributed`` is installed and that no
    ``--workers`` come with it, before any work."""
    if workers > 1:
        raise InputError(
            f"{FLAG}/--workers",
            f"expected one executor, found --dask {value} with --workers {workers}",
            fix="drop --workers: the cluster's workers run the cases",
        )
    target = parse_dask_target(value)
    _distributed()
    return target


@contextlib.contextmanager
def dask_executor(value: str) -> Iterator[DaskExecutor]:
    """Start (``local:N``) or connect to (``tcp://HOST:PORT``) a cluster for the block.

    A local cluster has ``N`` worker processes of one thread each, all listening on 127.0.0.1
    only (the scheduler's HTTP server too, on a free port). Its workers are started with
    ``spawn``: a script that calls this needs the usual ``if __name__ == "__main__":`` guard.
    On leaving the block the client is closed (and a local cluster with its workers); a remote
    cluster keeps running.

    Raises
    ------
    InputError
        Bad value, ``dask.distributed`` missing, the scheduler unreachable or without workers
        within :data:`CONNECT_S` seconds, or a worker without this tumorsynth version.
    """
    target = check_dask(value)
    distributed = _distributed()
    with contextlib.ExitStack() as stack:
        if target.local_workers is not None:
            cluster = distributed.LocalCluster(
                n_workers=target.local_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                # The scheduler always serves HTTP (health, the dashboard when bokeh is
                # installed); a free port, not 8787, which another cluster may hold.
                dashboard_address="127.0.0.1:0",
                # Not the workers' notes about the cases cancelled by a stop.
                silence_logs=logging.ERROR,
            )
            stack.callback(cluster.close)
            client = distributed.Client(cluster)
            client.run(_ignore_interrupts)
        else:
            client = _connect(distributed, str(target.address))
            cluster = None
        stack.callback(client.close)
        _check_workers(client, value)
        yield DaskExecutor(client, value, cluster)


def _distributed() -> ModuleType:
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise InputError(
            FLAG,
            f"needs dask.distributed, which is not installed here ({exc})",
            fix='pip install "tumorsynth[dask]", or run without --dask (--workers N)',
        ) from exc


def _connect(distributed: ModuleType, address: str) -> Any:
    try:
        return distributed.Client(address, timeout=CONNECT_S)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            FLAG,
            f"expected a Dask scheduler at {address}, found none answering within "
            f"{CONNECT_S:g} s ({exc})",
            fix="start one with `dask scheduler` (and workers with `dask worker ADDRESS`), or "
            "check the host and port",
        ) from exc


def _check_workers(client: Any, value: str) -> None:
    """Refuse a cluster without workers, or whose workers run another tumorsynth (or none)."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_S)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            FLAG,
            f"expected at least one worker at {value}, found none within {CONNECT_S:g} s",
            fix="start workers with `dask worker ADDRESS`",
        ) from exc
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # noqa: BLE001 - e.g. tumorsynth not importable on a worker
        raise InputError(
            FLAG,
            f"expected tumorsynth {__version__} on every worker of {value}, found a worker "
            f"that cannot run it ({type(exc).__name__}: {exc})",
            fix="install tumorsynth (the same version) in the workers' environment",
        ) from exc
    other = {worker: v for worker, v in versions.items() if v != __version__}
    if other:
        raise InputError(
            FLAG,
            f"expected tumorsynth {__version__} on every worker (outputs must not depend on "
            f"the worker), found {other}",
            fix="install the same tumorsynth version in the workers' environment",
        )


def _worker_version() -> str:
    return __version__


def _ignore_interrupts() -> None:
    """On a local worker: Ctrl-C reaches the whole process group, and this process stops the
    run (a worker the nanny restarts after dying does not ignore it, which costs only noise)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskExecutor:
    """Runs jobs on a connected cluster; see the module docstring for what it guarantees."""

    def __init__(self, client: Any, where: str, cluster: Any | None = None) -> None:
        self.client = client
        self.where = where  # the --dask value, for messages
        self.cluster = cluster  # a LocalCluster this process owns, closed on a stop

    def __call__(
        self,
        jobs: Sequence[Job],
        work: Callable[[Job], Result],
        on_result: Callable[[Job, Result], None],
        describe: Callable[[Job], str] = str,
    ) -> None:
        """Run ``work(job)`` on the cluster; ``on_result`` runs in this process.

        ``work`` must be picklable and importable on the workers (a module-level function or a
        ``functools.partial`` of one). Raises the first error of a job or of ``on_result``,
        after the running jobs were handed to ``on_result``.
        """
        distributed = _distributed()
        queue = list(jobs)
        running: dict[Any, Job] = {}
        finished = distributed.as_completed()
        error: BaseException | None = None
        try:
            while running or (queue and error is None):
                window = 2 * max(1, sum(self.client.nthreads().values()))
                while queue and error is None and len(running) < window:
                    job = queue.pop(0)
                    future = self.client.submit(work, job, pure=False)
                    running[future] = job
                    finished.add(future)
                future = next(finished)
                job = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - raised below, after the running ones
                    error = error or _job_failed(exc, describe(job), distributed)
                    continue
                finally:
                    # Taken: a worker that dies from now on must not run this case again.
                    future.release()
                try:
                    on_result(job, result)
                except Exception as exc:  # noqa: BLE001 - e.g. a full disk: first error wins
                    error = error or exc
        except OSError as exc:  # the scheduler is gone (CommClosedError, a timeout)
            self._stop(list(running))
            raise TumorsynthError(
                FLAG,
                f"lost the Dask scheduler at {self.where} ({type(exc).__name__}: {exc}); "
                "finished variants are recorded",
                fix="rerun the same command to resume once the scheduler runs again",
            ) from exc
        except BaseException:
            self._stop(list(running))
            raise
        if error is not None:
            raise error

    def _stop(self, futures: list[Any]) -> None:
        """After an interruption: no case of ours may still be writing when this returns
        (except on a remote cluster whose cases outlast :data:`DRAIN_S`, with a warning)."""
        with contextlib.suppress(Exception):
            self.client.cancel(futures)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.client.close()
                self.cluster.close()
            return
        keys = {future.key for future in futures}
        deadline = time.monotonic() + DRAIN_S
        told = False
        while keys:
            try:
                busy = self.client.run(_running_keys, keys)
            except Exception:  # noqa: BLE001 - the scheduler is gone: nothing to wait for
                return
            keys = {key for found in busy.values() for key in found}
            if not keys:
                return
            if time.monotonic() > deadline:
                warnings.warn(
                    f"{len(keys)} case(s) still run on the Dask workers after {DRAIN_S:g} s and "
                    "may write files the manifest does not list; the next run removes them",
                    stacklevel=3,
                )
                return
            if not told:
                print(
                    f"tumorsynth: waiting for {len(keys)} case(s) running on the Dask workers to "
                    "finish (Ctrl-C again to stop waiting)",
                    file=sys.stderr,
                )
                told = True
            time.sleep(_POLL_S)


def _running_keys(keys: set[Any], dask_worker: Any) -> list[Any]:
    """On a worker: which of ``keys`` its threads still execute (cancelled ones included)."""
    return [task.key for task in list(dask_worker.state.executing) if task.key in keys]


def _job_failed(exc: Exception, case: str, distributed: ModuleType) -> BaseException:
    """A job that raised on the cluster (not a case error, which the job returns): name it."""
    if isinstance(exc, TumorsynthError):
        return exc
    if isinstance(exc, distributed.KilledWorker):
        return TumorsynthError(
            FLAG,
            f"the Dask workers running {case} died each time (killed, or out of memory: {exc}); "
            "finished variants are recorded",
            fix="give the workers more memory (dask worker --memory-limit), then rerun the same "
            "command to resume",
        )
    return TumorsynthError(
        FLAG,
        f"{case} failed on the Dask cluster ({type(exc).__name__}: {exc}); finished variants "
        "are recorded",
        fix="check the workers' logs and environment, then rerun the same command to resume",
    )
