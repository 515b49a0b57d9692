"""One run per output folder: an exclusive ``flock`` on ``DIR/.tumorsynth.lock``.

Two runs writing into one folder would interleave their manifests (duplicate records, which replay
would render twice) and race on the same files. The lock is taken before anything is read or
written in the folder and held for the whole run, manifest and ``dataset.json`` writes included; a
second run is refused at once, naming the folder and the holder (pid, host, start time).

The lock is the kernel's, not the file's existence: the kernel releases it when the holder exits
in any way (SIGKILL and the OOM killer included), so a lock file left behind by a dead process
never blocks a new run. Worker processes forked by the holder share its lock, so a folder stays
locked until the last of them is gone. On Linux ``flock`` also works on NFS (emulated with
byte-range locks); on a file system without locks the run goes on with a warning.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with run_lock(d):
...     (d / LOCK_NAME).exists()
True
>>> (d / LOCK_NAME).exists()
False
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from tumorsynth import __version__
from tumorsynth.errors import OutputError

__all__ = ["LOCK_NAME", "run_lock"]

#: The lock file inside the output folder (hidden, so dataset readers skip it).
LOCK_NAME = ".tumorsynth.lock"

# Folders this thread holds (nesting depth), so that a command that runs a batch inside its own
# locked folder (export-nnunet) can take the same lock again. Keyed with the pid and the thread:
# a forked child must not believe it holds its parent's lock, and another thread of this process
# is another run (its own open file description conflicts with ours, so it is refused).
_held: dict[tuple[int, int, Path], int] = {}


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the output folder's lock for the ``with`` block (re-entrant within a thread).

    Raises
    ------
    OutputError
        Another process holds the lock (names it), or the lock file cannot be created.
    """
    folder = Path(folder)
    key = (os.getpid(), threading.get_ident(), folder.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield folder / LOCK_NAME
        finally:
            _held[key] -= 1
        return
    path = folder / LOCK_NAME
    fd = _acquire(path)
    _held[key] = 1
    try:
        yield path
    finally:
        del _held[key]
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: a waiting opener re-checks the inode
            os.close(fd)


def _acquire(path: Path) -> int | None:
    """Open and lock ``path``; retry when the file was replaced between open and lock."""
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(
                str(path.parent),
                f"cannot create the run lock {path.name} ({exc.strerror})",
                fix="choose another --out or fix its permissions",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(
                str(path.parent),
                f"another tumorsynth run is writing into this folder ({_holder(path)}; lock "
                f"{path}); two runs in one folder would mix their outputs",
                fix="wait for it to finish, stop it, or choose another --out",
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise OutputError(str(path), f"cannot take the run lock ({exc.strerror})") from exc
            warnings.warn(
                f"{path.parent}: this file system does not support locks ({exc.strerror}); "
                "nothing stops a second run from writing into the same folder",
                stacklevel=4,
            )
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file as we opened it: lock the new one
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, _holder_json().encode())
        return fd
    raise OutputError(str(path.parent), "could not take the run lock (it kept being replaced)")


def _holder_json() -> str:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": started,
        "tumorsynth_version": __version__,
    }
    return json.dumps(holder) + "\n"


def _holder(path: Path) -> str:
    """``pid 123 on host node7, started 2026-01-01T10:00:00+00:00`` from the lock file."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder not known yet: it is starting"
