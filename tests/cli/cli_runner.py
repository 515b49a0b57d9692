"""Run ``tumorsynth`` in-process for the CLI tests (shared by every tests/cli file)."""

import contextlib
import io
from typing import NamedTuple

from tumorsynth.cli.main import main


class Run(NamedTuple):
    code: int
    out: str
    err: str


def cli(*argv: object) -> Run:
    """``tumorsynth ARGV`` in-process; argparse's SystemExit becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Run(code, out.getvalue(), err.getvalue())
