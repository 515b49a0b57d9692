"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, an interrupted run leaves no partial output, and a full
disk is reported as :class:`~tumorsynth.errors.OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tumorsynth.errors import OutputError

__all__ = [
    "append_line_durably",
    "append_lines_durably",
    "atomic_path",
    "check_is_folder",
    "ensure_writable_dir",
    "is_partial_file",
    "output_dir",
]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    The temporary name keeps the target's suffixes (``.nii.gz`` stays ``.nii.gz``) so writers that
    pick a format by extension behave the same. On any error the temporary file is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello", encoding="utf-8")
    >>> (d / "a.txt").read_text(encoding="utf-8")
    'hello'
    """
    target = Path(target)
    ensure_writable_dir(target.parent)
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name.split('.')[0]}.", suffix=f".part{suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        raise _output_error(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def output_dir(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Create ``folder`` (and missing parents) for a run; if the run fails, remove every folder
    this call created that is still empty, so a failed run leaves nothing behind.

    A path that names a file or a broken symbolic link is refused before anything is created.
    """
    folder = Path(folder)
    check_is_folder(folder)
    first_new = None
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        first_new = candidate
    try:
        ensure_writable_dir(folder)
        yield folder
    except BaseException:
        if first_new is not None:
            _remove_empty_tree(first_new)
        raise


def _remove_empty_tree(folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def check_is_folder(folder: str | os.PathLike[str]) -> None:
    """Refuse ``folder`` when it, or the first of its parents that exists, is not a folder.

    A missing path is fine (it will be created); an existing file or a broken symbolic link
    (whose target ``mkdir`` would silently create elsewhere, or fail on) is an
    :class:`~tumorsynth.errors.OutputError` that says a folder was expected.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = f.write_text("x", encoding="utf-8")
    >>> try:
    ...     check_is_folder(f)
    ... except OutputError as exc:
    ...     print(exc.message)
    cannot write: expected a folder, found a file
    """
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        where = "" if candidate == folder else f" at {candidate}"
        if candidate.is_symlink() and not candidate.exists():
            raise OutputError(
                str(folder),
                f"cannot write: expected a folder, found a broken symbolic link{where} "
                f"(to {os.readlink(candidate)})",
                fix="choose another --out or remove the link",
            )
        if candidate.exists():
            if not candidate.is_dir():
                raise OutputError(
                    str(folder),
                    f"cannot write: expected a folder, found a file{where}",
                    fix="choose another --out",
                )
            return


def ensure_writable_dir(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and check that files can be created in it."""
    folder = Path(folder)
    check_is_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(folder, exc) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            str(folder),
            "output folder is not writable",
            fix="choose another --out or fix its permissions",
        )
    return folder


def append_line_durably(path: str | os.PathLike[str], line: str) -> None:
    """Append one line (a manifest record) and fsync, so a crash loses at most this line.

    A previous crash can leave a last line without its newline; that fragment is cut off first
    (readers ignore it too), so records never run into each other.
    """
    append_lines_durably(path, [line])


def append_lines_durably(path: str | os.PathLike[str], lines: list[str]) -> None:
    """Append several lines in one write and fsync (see :func:`append_line_durably`)."""
    path = Path(path)
    if any("\n" in line for line in lines):
        raise ValueError("a manifest line must not contain a newline")
    if not lines:
        return
    try:
        with open(path, "a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    handle.truncate(_end_of_last_line(handle, size))
            handle.seek(0, os.SEEK_END)
            handle.write("".join(line + "\n" for line in lines).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _output_error(path, exc) from exc


def _end_of_last_line(handle: BinaryIO, size: int, chunk: int = 65536) -> int:
    """Offset just past the last newline in the first ``size`` bytes (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        handle.seek(start)
        cut = handle.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def is_partial_file(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_path`
    (``.<stem>.<random>.part<suffix>``), which a killed run can leave behind and a reader must
    never take for an output.

    Examples
    --------
    >>> is_partial_file(".case_syn0_0000.k2j3h4.part.nii.gz"), is_partial_file("case_0000.nii.gz")
    (True, False)
    """
    return _PART_NAME.fullmatch(name) is not None


_PART_NAME = re.compile(r"\.[^/]*\.part(\.[^/]*)?")


def _output_error(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(
            str(path),
            "disk full while writing; nothing partial was kept",
            fix="free space or choose another --out",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            str(path),
            f"not writable ({exc.strerror})",
            fix="choose another --out or fix its permissions",
        )
    return OutputError(str(path), f"cannot write ({exc.strerror or exc})")
