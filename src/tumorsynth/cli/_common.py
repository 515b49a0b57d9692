"""Shared CLI plumbing: config files, error reporting, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tumorsynth.pipelines.filter_settings import FilterSettings

__all__ = [
    "add_filter_options",
    "add_generator_options",
    "add_seed",
    "add_settings_overrides",
    "add_training_arguments",
    "apply_config",
    "filter_settings",
    "generator_options",
    "print_acceptance",
    "run_guarded",
    "run_training",
    "split_organs",
]

T = TypeVar("T")
R = TypeVar("R")

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
    """``--set KEY=VALUE`` (repeatable) for commands whose --config is a configuration file."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting, e.g. --set {example} (the value is read as YAML)",
    )


def add_training_arguments(parser: argparse.ArgumentParser, *, resume: bool) -> None:
    """The arguments every training command takes: ``--set``, ``--no-progress`` and, where the
    training can continue a run, ``--resume``."""
    if resume:
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the run in train.out_dir from its checkpoints/last (with the same "
            "settings; optim.max_steps may grow). Without it, an out_dir that holds a run is "
            "refused",
        )
    add_settings_overrides(parser, "optim.max_steps=500")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_training(
    args: argparse.Namespace,
    config_class: type[T],
    train: Callable[..., R],
    summary: Callable[[R], str],
) -> int:
    """The one body of the training commands: load ``--config`` with its ``--set`` overrides
    into ``config_class`` (checked whole, its input paths too, before anything is read or
    written), ``train`` it, print ``summary`` of the result (under torchrun, rank 0 only)."""
    from tumorsynth._settings import load_config
    from tumorsynth.errors import InputError

    if not args.config:
        raise InputError(
            "--config",
            f"a configuration file (YAML) is required; `tumorsynth config {args.command}` "
            "prints one with every setting",
        )
    config = load_config(config_class, args.config, args.set, inputs=True)
    from tumorsynth.training.resume import sigterm_as_interrupt

    options = {"resume": args.resume} if hasattr(args, "resume") else {}
    with sigterm_as_interrupt():  # a scheduler's SIGTERM keeps the state, as Ctrl-C does
        result = train(config, progress=not args.no_progress, **options)
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(result))
    return 0


def apply_config(
    parser: argparse.ArgumentParser, argv: Sequence[str], args: argparse.Namespace
) -> argparse.Namespace:
    """Reparse with the config file's values as defaults, so command-line flags still win."""
    from tumorsynth._settings import read_settings
    from tumorsynth.errors import InputError

    data = read_settings(args.config)
    known = vars(args)
    defaults = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest.startswith("_"):
            raise InputError(
                str(args.config),
                f"unknown option {key!r} for '{args.command}'; known are "
                f"{sorted(k for k in known if not k.startswith('_'))}",
            )
        # a mapping (an inline label map) is passed on as its JSON text, as on the command line
        defaults[dest] = json.dumps(value) if isinstance(value, dict) else value
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
            f"tumorsynth {args.command}: interrupted; what was finished is kept (rerun the same "
            "command to resume; a training with --resume)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = python_format


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="learned generators: the model folder (train-diffusion writes one)",
    )
    parser.add_argument(
        "--device", default="auto", help="learned generators: auto, cpu, cuda (default auto)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="learned generators: sampling steps (default: the checkpoint's, 4 early / 50 larger)",
    )


def generator_options(args: argparse.Namespace) -> dict:
    """Factory options for ``--generator`` from ``--checkpoint/--device/--steps``: those given,
    and the device for a generator that takes one. An option the generator does not take is
    refused when it is built (naming the generators that take it)."""
    from tumorsynth.generators import generator_takes

    options: dict = {}
    if args.checkpoint:
        options["checkpoint"] = args.checkpoint
    if generator_takes(args.generator, "device"):
        options["device"] = args.device
    if args.steps is not None:
        options["steps"] = int(args.steps)
    return options


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="CHECKPOINT",
        help="keep only tumors this segmentor (a `tumorsynth train` model folder) recognizes; "
        "one per organ, repeatable",
    )
    parser.add_argument(
        "--filter-threshold",
        type=float,
        default=0.7,
        metavar="F",
        help="a tumor passes when more than this fraction of its voxels are predicted as tumor "
        "(default 0.7, FreeTumor's)",
    )
    parser.add_argument(
        "--filter-retries",
        type=int,
        default=3,
        metavar="N",
        help="redraws of a rejected tumor's appearance (seeds derived from its own; default 3)",
    )
    parser.add_argument(
        "--filter-on-fail",
        default="keep",
        choices=("keep", "skip"),
        help="after the last redraw: keep the tumor marked rejected (default) or leave it out",
    )


def filter_settings(args: argparse.Namespace) -> FilterSettings | None:
    """The quality filter of ``--filter`` and its options (None without ``--filter``)."""
    from tumorsynth.pipelines.filter_settings import FilterSettings

    checkpoints = args.filter if isinstance(args.filter, list) else [args.filter]
    if not [c for c in checkpoints if c]:
        return None
    return FilterSettings(
        tuple(checkpoints),
        threshold=float(args.filter_threshold),
        retries=int(args.filter_retries),
        on_fail=str(args.filter_on_fail),
        device=str(args.device),
    )


def print_acceptance(out_dir: Path) -> None:
    """The run's acceptance table (from its filter_summary.json)."""
    import json

    from tumorsynth.pipelines.batch import FILTER_SUMMARY
    from tumorsynth.pipelines.filter_settings import format_acceptance

    rows = json.loads((Path(out_dir) / FILTER_SUMMARY).read_text(encoding="utf-8"))
    print("quality filter, per organ and size class:")
    print(format_acceptance(rows))
