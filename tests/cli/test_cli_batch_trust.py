"""``tumorsynth synthesize --dataset`` batches that are killed, run twice at once or resumed on
changed sources, through the installed console script (signals need a real process).

A killed batch must leave no worker behind, a folder whose files are exactly its manifest's (at
once for SIGTERM and SIGINT, after the next run for SIGKILL), and a rerun that completes to what
an uninterrupted run gives, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_helpers import SMALL_SHAPE, SMALL_SPACING, assert_manifest_is_the_files, write_phantoms
from cli_runner import cli
from file_checks import file_hashes

from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom

SCRIPT = Path(sys.executable).with_name("tumorsynth")
CASES = tuple(f"p{i}" for i in range(6))
PER_CASE = 8  # 48 variants: the first case is recorded well before the run ends


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantoms(tmp_path_factory.mktemp("batch_trust") / "Dataset001_Phantom", CASES)


def argv(dataset: Path, out: Path, workers: int = 2) -> list[str]:
    return [
        str(SCRIPT),
        "synthesize",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--label-map",
        "phantom",
        "--count",
        "2",
        "--size",
        "small",
        "--per-case",
        str(PER_CASE),
        "--workers",
        str(workers),
        "--no-progress",
    ]


def start(dataset: Path, out: Path, until: str = "manifest.jsonl") -> subprocess.Popen[str]:
    """Start a batch with two workers; return once ``out/until`` holds something (by default
    the first recorded variant)."""
    assert SCRIPT.is_file(), f"console script not installed: {SCRIPT}"
    process = subprocess.Popen(
        argv(dataset, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a stray signal of the test cannot reach pytest
    )
    wait_for(lambda: has_content(out / until), process, f"{until} written")
    return process


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, err


def wait_for(condition, process: subprocess.Popen[str], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.005)


def has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc; psutil is not a dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead orphan waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def digests(out: Path) -> dict[str, str]:
    """sha256 of the cases (the manifest's line order depends on which worker finished first)."""
    return file_hashes(out, "*Tr/*")


@pytest.fixture(scope="module")
def clean(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run (read only)."""
    out = tmp_path_factory.mktemp("clean") / "out"
    done = subprocess.run(argv(dataset, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143), (signal.SIGINT, 130)],
    ids=["SIGKILL", "SIGTERM", "SIGINT"],
)
def test_killed_batch_leaves_no_worker_and_resumes_to_a_clean_run(
    dataset: Path, clean: Path, tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "out"
    process = start(dataset, out)
    workers = children(process.pid)
    assert len(workers) >= 2, workers  # the two workers (and any helper process)
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # Ctrl-C reaches the whole process group
    else:
        os.kill(process.pid, signum)  # the OOM killer, kill, timeout: the parent only
    returncode, err = finish(process)
    assert returncode == code, err
    if signum != signal.SIGKILL:
        assert "resume" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if running(pid)], "workers outlived their parent"
    if signum != signal.SIGKILL:  # a clean stop: consistent at once
        assert_manifest_is_the_files(out)
        assert 0 < len(records(out)) < len(records(clean))

    rerun = subprocess.run(argv(dataset, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in rerun.stdout
    assert_manifest_is_the_files(out)
    key = lambda r: (r["case_id"], r["variant"], r["tumor_index"])  # noqa: E731
    assert sorted(map(key, records(out))) == sorted(map(key, records(clean)))
    assert digests(out) == digests(clean)  # byte for byte what an uninterrupted run writes


def test_a_killed_worker_stops_the_run_with_a_message_and_a_consistent_folder(
    dataset: Path, clean: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    process = start(dataset, out)
    workers = children(process.pid)
    os.kill(workers[0], signal.SIGKILL)  # the OOM killer picks a worker
    returncode, err = finish(process)
    assert returncode == 2, err
    assert "a worker process died" in err and "Traceback" not in err, err
    assert not [pid for pid in workers if running(pid)], "a worker outlived the run"
    assert records(out)  # the variants recorded before the worker died are kept
    assert_manifest_is_the_files(out)
    rerun = subprocess.run(argv(dataset, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert_manifest_is_the_files(out)
    assert digests(out) == digests(clean)


def test_two_runs_into_one_folder_one_is_refused_naming_the_lock(
    dataset: Path, clean: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = start(dataset, out, until="run.json")
    os.killpg(first.pid, signal.SIGSTOP)  # held still: it keeps the folder while suspended
    try:
        second = subprocess.run(argv(dataset, out), capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    code, err = finish(first)
    assert code == 0, err
    assert second.returncode == 2, second.stderr
    assert "another tumorsynth run is writing into this folder" in second.stderr
    assert f"pid {first.pid} on host" in second.stderr and ".tumorsynth.lock" in second.stderr
    assert_manifest_is_the_files(out)
    assert digests(out) == digests(clean)


def test_resume_after_a_source_ct_was_swapped_is_refused(dataset: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(dataset, tmp_path / "data"))
    for case_id in CASES[2:]:
        for path in data.glob(f"*/{case_id}*.nii.gz"):
            path.unlink()
    out = tmp_path / "out"
    args = [*argv(data, out, workers=1)[1:], "--per-case", "1"]
    assert cli(*args).code == 0
    before = digests(out)
    swapped = data / "imagesTr" / f"{CASES[0]}_0000.nii.gz"
    ct, _ = make_phantom(7, shape=SMALL_SHAPE, spacing_mm=SMALL_SPACING)  # another patient
    save_volume(ct, swapped)
    run = cli(*args)
    assert run.code == 2
    assert str(swapped) in run.err and f"case '{CASES[0]}'" in run.err and "changed" in run.err
    assert digests(out) == before


@pytest.mark.parametrize("kind", ["file", "broken symbolic link"])
def test_out_that_is_not_a_folder_is_refused(dataset: Path, tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("a file")
    else:
        out.symlink_to(tmp_path / "nowhere" / "out")
    run = cli(*argv(dataset, out, workers=1)[1:])
    assert run.code == 2 and f"{out}: cannot write: expected a folder, found a {kind}" in run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert out.is_symlink() or out.read_text() == "a file"
