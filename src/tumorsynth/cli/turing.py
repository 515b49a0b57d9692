"""``tumorsynth turing create | readers | serve | score``: the Visual Turing Test reader study.

Each action is a thin module of its own (``turing_create``, ``turing_serve``, ``turing_score``)
with ``add_arguments(parser)`` and ``run(args) -> int``; this one only dispatches.
"""

from __future__ import annotations

import argparse
import importlib

#: ``create`` reads its own --config (the study's YAML); the others take none.
TAKES_CONFIG = False

#: Action -> (module in tumorsynth.cli, help).
ACTIONS = {
    "create": ("turing_create", "build a blinded study of real and synthetic tumors from a YAML"),
    "readers": ("turing_serve", "add readers (each gets a private link) or list them"),
    "serve": ("turing_serve", "serve the study to readers in their browsers"),
    "score": ("turing_score", "sensitivity, specificity, accuracy and agreement of the readers"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="turing_action", metavar="ACTION", required=True)
    for name, (module, help_text) in ACTIONS.items():
        child = actions.add_parser(name, help=help_text, description=help_text)
        command = importlib.import_module(f"tumorsynth.cli.{module}")
        adder = getattr(command, f"add_{name}_arguments", None) or command.add_arguments
        adder(child)
        child.set_defaults(_turing_module=module, _turing_run=f"run_{name}")


def run(args: argparse.Namespace) -> int:
    command = importlib.import_module(f"tumorsynth.cli.{args._turing_module}")
    runner = getattr(command, args._turing_run, None) or command.run
    return int(runner(args) or 0)
