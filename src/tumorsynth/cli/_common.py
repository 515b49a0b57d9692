"""Shared CLI plumbing: config files, error reporting, exit codes."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "add_seed",
    "add_settings_overrides",
    "apply_config",
    "run_guarded",
    "settings_overrides",
    "split_organs",
]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=default,
        help=f"random seed; the same seed gives the same tumors (default {default})",
    )


def split_organs(text: str) -> tuple[str, ...]:
    """``--organ "liver, kidney"`` -> ``("liver", "kidney")``; an organ named twice is refused."""
    from tumorsynth.errors import InputError

    organs = tuple(o.strip() for o in str(text).split(",") if o.strip())
    repeated = sorted({organ for organ in organs if organs.count(organ) > 1})
    if repeated:
        raise InputError(
            "--organ",
            f"expected each organ once, found {', '.join(repeated)} more than once in {text!r}",
            fix="use --count for more tumors in one organ",
        )
    return organs


def add_settings_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE`` (repeatable) for commands whose --config is a training config."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting, e.g. --set {example} (YAML value)",
    )


def settings_overrides(items: Sequence[str]) -> dict:
    """``["optim.max_steps=5"]`` -> ``{"optim": {"max_steps": 5}}`` (values parsed as YAML)."""
    import yaml

    from tumorsynth.errors import InputError
    from tumorsynth.training.config import dotted_settings

    flat = {}
    for item in items:
        if "=" not in item:
            raise InputError("--set", f"expected KEY=VALUE, found {item!r}")
        key, value = item.split("=", 1)
        flat[key] = yaml.safe_load(value)
    return dotted_settings(flat)


def apply_config(
    parser: argparse.ArgumentParser, argv: Sequence[str], args: argparse.Namespace
) -> argparse.Namespace:
    """Reparse with the config file's values as defaults, so command-line flags still win."""
    from tumorsynth.errors import InputError

    path = Path(args.config)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(str(path), f"cannot read config file ({exc.strerror})") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:
        raise InputError(
            str(path), f"expected a YAML/JSON mapping of options, found unparsable text ({exc})"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(str(path), f"expected a mapping of options, found {type(data).__name__}")
    known = vars(args)
    defaults = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest.startswith("_"):
            raise InputError(
                str(path),
                f"unknown option {key!r} for '{args.command}'; known are "
                f"{sorted(k for k in known if not k.startswith('_'))}",
            )
        defaults[dest] = value
    sub = _subparser(parser, args.command)
    sub.set_defaults(**defaults)
    return parser.parse_args(list(argv))


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # argparse keeps subparsers here
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def run_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; bad input -> message on stderr and exit 2, Ctrl-C -> exit 130."""
    from tumorsynth.errors import TumorsynthError

    warnings.simplefilter("default")
    # One line per warning, as a command-line user reads it (no Python source line).
    python_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *_, **__: (
        f"tumorsynth {args.command}: warning: {message}\n"
    )
    try:
        return int(run(args) or 0)
    except TumorsynthError as exc:
        print(f"tumorsynth {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"tumorsynth {args.command}: interrupted; finished cases are kept, rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = python_format
