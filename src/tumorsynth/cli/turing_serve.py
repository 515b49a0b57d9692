"""``tumorsynth turing readers add|list STUDY`` and ``tumorsynth turing serve STUDY``.

``readers add`` gives each reader a private link (the token in it is printed once and stored
only as a hash); ``readers list`` shows who has answered how much; ``serve`` runs the web app
(:mod:`tumorsynth.turing.app`) on 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse

__all__ = ["add_readers_arguments", "add_serve_arguments", "run_readers", "run_serve"]

READER_ACTIONS = ("add", "list")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _add_address(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"{what} (default {DEFAULT_HOST}: this machine only; another address is served "
        "with a warning, as plain HTTP)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )


def add_readers_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "words",
        nargs=2,
        metavar="WORD",  # a tuple here breaks argparse's help on Python 3.11
        help="`add STUDY` or `list STUDY`: the action, then the study folder (either order)",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        help="add: the reader's name, unique in the study (repeatable: several readers at once)",
    )
    _add_address(parser, "add: the address the printed links point to")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY", help="the study folder (`turing create` made it)")
    _add_address(parser, "address to listen on")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("warning", "info", "debug"),
        help="uvicorn's log level (its access log stays off: it would log the tokens of links)",
    )


def _reader_words(words: list[str]) -> tuple[str, str]:
    """(action, study) from ``add STUDY`` or ``STUDY add``."""
    from tumorsynth.errors import InputError

    first, second = words
    if first in READER_ACTIONS:
        return first, second
    if second in READER_ACTIONS:
        return second, first
    raise InputError(
        "turing readers",
        f"expected an action ({' or '.join(READER_ACTIONS)}) and a study folder, found {words}",
        fix="e.g. `tumorsynth turing readers add STUDY --name alice`",
    )


def _check_port(port: int) -> None:
    from tumorsynth.errors import InputError

    if not 0 <= port <= 65535:
        raise InputError("--port", f"expected 0 (any free port) to 65535, found {port}")


def run_readers(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.turing.store import AnswerStore

    action, study = _reader_words(list(args.words))
    if action == "list":
        if args.name:
            raise InputError("--name", "is for `readers add`, not `readers list`")
        store = AnswerStore(study)
        try:
            readers = store.readers()
        finally:
            store.close()
        if not readers:
            print(f"{study}: no readers yet (add one with `tumorsynth turing readers add`)")
            return 0
        width = max(len(r.name) for r in readers)
        print(f"{'reader':<{width}}  answered  added                          last answer")
        for r in readers:
            done = f"{r.answered}/{r.total}"
            print(f"{r.name:<{width}}  {done:>8}  {r.created_at:<29}  {r.last_answer_at or '-'}")
        return 0
    if not args.name:
        raise InputError("--name", "is required to add a reader", fix="e.g. --name alice")
    _check_port(args.port)
    store = AnswerStore(study, create=True)
    try:
        shown = f"[{args.host}]" if ":" in args.host else args.host
        for name in args.name:
            reader, token = store.add_reader(name)
            print(f"reader {reader.name!r} added: http://{shown}:{args.port}/?t={token}")
    finally:
        store.close()
    print(
        "each link is shown only this once (only a hash of its token is stored): send it to "
        "its reader privately; a lost link means adding the reader again under another name"
    )
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from tumorsynth.turing.app import serve

    _check_port(args.port)
    serve(args.study, host=args.host, port=args.port, log_level=args.log_level)
    return 0
