"""run_batch and ``tumorsynth synthesize --dask`` on Dask clusters: a LocalCluster, and a
scheduler and workers started as separate processes on 127.0.0.1 (as on several hosts).

Whatever runs the cases, the output folder must be what one process writes, byte for byte: the
same files, the same manifest records (in completion order, so compared sorted), nothing listed
twice, no file outside the manifest, after a worker dies mid-run and after a stop and resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from batch_helpers import assert_manifest_is_the_files, batch_settings, write_phantoms
from file_checks import file_hashes
from shared_data import require_module

from tumorsynth.cli.main import main
from tumorsynth.errors import InputError
from tumorsynth.io.datasets import CaseRef, discover_cases
from tumorsynth.io.records import MANIFEST_NAME, read_manifest
from tumorsynth.pipelines import batch_dask
from tumorsynth.pipelines.batch import BatchOutput, run_batch

CASES = tuple(f"d{i}" for i in range(6))
PER_CASE = 2


class Cluster(NamedTuple):
    address: str
    workers: dict[str, subprocess.Popen[bytes]]  # worker address -> its process


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantoms(tmp_path_factory.mktemp("dask_inputs") / "Dataset001_Phantom", CASES)


@pytest.fixture(scope="module")
def cases(dataset: Path) -> list[CaseRef]:
    return discover_cases(dataset)


@pytest.fixture(scope="module")
def reference(cases: list[CaseRef], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted one-process run every executor must reproduce (read only)."""
    out = tmp_path_factory.mktemp("dask_reference") / "out"
    run_batch(cases, out, batch_settings(per_case=PER_CASE), progress=False)
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler and two single-thread workers, each its own process (shared by the tests
    that keep its workers alive)."""
    with start_cluster(tmp_path_factory.mktemp("dask_cluster")) as running:
        yield running


@contextlib.contextmanager
def start_cluster(folder: Path, workers: int = 2) -> Iterator[Cluster]:
    distributed = require_module("distributed")
    processes: list[subprocess.Popen[bytes]] = []
    folder.mkdir(parents=True, exist_ok=True)

    def spawn(*argv: str) -> subprocess.Popen[bytes]:
        with (folder / f"{argv[0]}{len(processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dask", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal meant for a worker cannot reach pytest
            )
        processes.append(process)
        return process

    info = folder / "scheduler.json"
    common = ("--host", "127.0.0.1", "--no-dashboard")
    try:
        spawn("scheduler", "--port", "0", "--scheduler-file", str(info), *common)
        started = [
            spawn(
                "worker",
                "--scheduler-file",
                str(info),
                "--nthreads",
                "1",
                "--no-nanny",  # a killed worker stays dead: its cases must run elsewhere
                "--local-directory",
                str(folder / "scratch"),
                *common,
            )
            for _ in range(workers)
        ]
        address = wait_for_scheduler(info, processes[0])
        with distributed.Client(address, timeout=30) as client:
            if workers:
                client.wait_for_workers(workers, timeout=60)
            pids = client.run(os.getpid)
        by_pid = {process.pid: process for process in started}
        yield Cluster(address, {worker: by_pid[pid] for worker, pid in pids.items()})
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def wait_for_scheduler(info: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the dask scheduler exited"
        if info.is_file() and info.stat().st_size:
            return str(json.loads(info.read_text())["address"])
        time.sleep(0.1)
    raise AssertionError("the dask scheduler wrote no scheduler file within 60 s")


def sorted_records(out: Path) -> list[dict]:
    records = [r.to_dict() for r in read_manifest(out / MANIFEST_NAME)]
    return sorted(records, key=lambda r: (r["case_id"], r["variant"], r["tumor_index"]))


def assert_same_as(out: Path, reference: Path) -> None:
    assert_manifest_is_the_files(out)
    assert sorted_records(out) == sorted_records(reference)
    assert file_hashes(out, "*Tr/*") == file_hashes(reference, "*Tr/*")


class Run(NamedTuple):
    code: int
    out: str
    err: str


def synthesize(capsys: pytest.CaptureFixture[str], dataset: Path, out: Path, *extra: object) -> Run:
    """``tumorsynth synthesize`` in-process on ``dataset`` with the settings of the reference."""
    code = main([str(a) for a in synthesize_argv(dataset, out, *extra)])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def synthesize_argv(dataset: Path, out: Path, *extra: object) -> list[object]:
    """The command line of the reference run (``batch_settings(per_case=PER_CASE)``)."""
    same = f"--label-map phantom --count 1 --size small --seed 7 --per-case {PER_CASE}"
    return [
        "synthesize",
        "--dataset",
        dataset,
        "--out",
        out,
        *same.split(),
        "--no-progress",
        *extra,
    ]


def run_on(dask: str, cases: list[CaseRef], out: Path, **options: Any) -> BatchOutput:
    """The reference run's settings, on the cluster ``dask``."""
    return run_batch(cases, out, batch_settings(per_case=PER_CASE), dask=dask, **options)


def busy_workers(address: str) -> dict[str, int]:
    """Worker address -> how many cases of the run it holds now: running or waiting there, or
    finished with a result the client has not taken yet (on a loaded machine the workers may
    have finished every submitted case before the client's first callback runs; a worker that
    dies with such results must redo them elsewhere all the same)."""
    distributed = require_module("distributed")
    with distributed.Client(address, timeout=30) as spy:
        held = {worker: set(keys) for worker, keys in spy.processing().items()}
        for worker, keys in spy.has_what().items():
            held.setdefault(worker, set()).update(keys)
    return {worker: len(keys) for worker, keys in held.items() if keys}


def executing(address: str) -> dict[str, int]:
    """Worker address -> how many tasks its threads still run (cancelled ones included)."""
    distributed = require_module("distributed")
    with distributed.Client(address, timeout=30) as spy:
        return spy.run(lambda dask_worker: len(dask_worker.state.executing))


# -- same files whatever the executor ------------------------------------------------------------
@pytest.mark.slow
def test_local_cluster_gives_the_files_of_one_process(cases, reference, tmp_path):
    require_module("distributed")
    out = tmp_path / "out"
    result = run_on("local:2", cases, out, progress=False)
    assert result.variants_done == len(CASES) * PER_CASE
    assert_same_as(out, reference)


@pytest.mark.slow
def test_separate_scheduler_and_workers_through_the_cli(
    capsys, dataset, reference, cluster, tmp_path
):
    out = tmp_path / "out"
    run = synthesize(capsys, dataset, out, "--dask", cluster.address)
    assert run.code == 0, run.err
    assert f"{len(CASES) * PER_CASE} new case variants" in run.out
    assert_same_as(out, reference)


@pytest.mark.slow
def test_first_error_is_reported_with_its_case(cases, cluster, tmp_path):
    missing = CaseRef(cases[-1].case_id, cases[-1].image, None)  # no label: nothing to place by
    out = tmp_path / "out"
    with pytest.raises(InputError, match="has no label") as caught:
        run_batch([*cases[:-1], missing], out, batch_settings(), dask=cluster.address)
    assert str(cases[-1].image) in str(caught.value)
    assert_manifest_is_the_files(out)  # what finished is recorded, nothing else is on disk


# -- workers die, runs stop ------------------------------------------------------------------------
@pytest.mark.slow
def test_killed_worker_cases_are_redone_elsewhere(cases, reference, tmp_path):
    with start_cluster(tmp_path / "cluster") as own:
        killed: dict[str, int] = {}

        def kill_a_busy_worker(case_id: str, records: list) -> None:
            if killed:
                return
            busy = busy_workers(own.address)
            worker = max(busy, key=busy.__getitem__)
            own.workers[worker].kill()
            own.workers[worker].wait(timeout=30)
            killed[worker] = busy[worker]

        out = tmp_path / "out"
        result = run_on(own.address, cases, out, progress=False, on_case=kill_a_busy_worker)
        assert list(killed.values())[0] >= 1  # it died with cases of the run on it
        assert result.variants_done == len(CASES) * PER_CASE
        assert_same_as(out, reference)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_uninterrupted_result(cases, reference, cluster, tmp_path):
    out = tmp_path / "out"
    finished: list[str] = []

    def stop(case_id: str, records: list) -> None:
        finished.append(case_id)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_on(cluster.address, cases, out, progress=False, on_case=stop)
    # No case of the stopped run still runs anywhere, not even a cancelled one.
    assert set(executing(cluster.address).values()) == {0}
    assert_manifest_is_the_files(out)
    assert {r.case_id for r in read_manifest(out / MANIFEST_NAME)} == set(finished)
    done = {name: (out / name).stat().st_ino for name in file_hashes(out, "*Tr/*")}

    result = run_on(cluster.address, cases, out)
    assert result.variants_skipped == len(done) // 2
    assert_same_as(out, reference)
    assert all((out / name).stat().st_ino == inode for name, inode in done.items())


@pytest.mark.slow
def test_interrupted_local_cluster_leaves_a_consistent_folder(cases, reference, tmp_path):
    require_module("distributed")
    out = tmp_path / "out"

    def stop(case_id: str, records: list) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_on("local:2", cases, out, progress=False, on_case=stop)
    assert_manifest_is_the_files(out)
    run_batch(cases, out, batch_settings(per_case=PER_CASE), progress=False)  # another executor
    assert_same_as(out, reference)


# -- bad --dask values -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("local:0", "'local:0'"),
        ("local:two", "'local:two'"),
        ("tcp://", "'tcp://'"),
        ("http://127.0.0.1:8786", "'http://127.0.0.1:8786'"),
        ("tcp://127.0.0.1:99999", "'tcp://127.0.0.1:99999'"),
        ("127.0.0.1:8786", "'127.0.0.1:8786'"),
    ],
)
def test_malformed_dask_value_is_refused_before_any_output(capsys, dataset, tmp_path, value, found):
    out = tmp_path / "out"
    run = synthesize(capsys, dataset, out, "--dask", value)
    assert run.code == 2
    assert "--dask: expected local:N" in run.err and found in run.err
    assert not out.exists()


def test_dask_with_workers_is_refused(capsys, dataset, tmp_path):
    out = tmp_path / "out"
    run = synthesize(capsys, dataset, out, "--dask", "local:2", "--workers", 2)
    assert run.code == 2 and "--dask/--workers: expected one executor" in run.err
    assert not out.exists()
    with pytest.raises(InputError, match="one executor"):
        run_batch([], out, batch_settings(), workers=2, dask="local:2")
    assert not out.exists()


def test_missing_dask_is_named(capsys, dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    out = tmp_path / "out"
    run = synthesize(capsys, dataset, out, "--dask", "local:2")
    assert run.code == 2
    assert "--dask: needs dask.distributed, which is not installed" in run.err
    assert "tumorsynth[dask]" in run.err
    assert not out.exists()


def test_unreachable_scheduler_is_refused_before_any_output(capsys, dataset, tmp_path, monkeypatch):
    require_module("distributed")
    monkeypatch.setattr(batch_dask, "CONNECT_S", 1.0)
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    run = synthesize(capsys, dataset, out, "--dask", f"tcp://127.0.0.1:{port}")
    assert run.code == 2
    assert f"--dask: expected a Dask scheduler at tcp://127.0.0.1:{port}" in run.err
    assert not out.exists()


@pytest.mark.slow
def test_scheduler_without_workers_is_refused_before_any_output(
    capsys, dataset, tmp_path, monkeypatch
):
    monkeypatch.setattr(batch_dask, "CONNECT_S", 1.0)
    out = tmp_path / "out"
    with start_cluster(tmp_path / "cluster", workers=0) as lonely:
        run = synthesize(capsys, dataset, out, "--dask", lonely.address)
    assert run.code == 2
    assert f"--dask: expected at least one worker at {lonely.address}, found none" in run.err
    assert not out.exists()
