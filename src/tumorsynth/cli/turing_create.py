"""``tumorsynth turing create --config STUDY.yaml --out STUDY``: build a blinded reader study of
real and synthetic tumors (:mod:`tumorsynth.turing.study`)."""

from __future__ import annotations

import argparse

from tumorsynth.cli._common import add_settings_overrides

__all__ = ["add_create_arguments", "run_create"]


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        # not ``config``: main() would read that as a file of option defaults
        dest="study_config",
        metavar="STUDY.yaml",
        help="the study: sources of real and synthetic tumors, organs, size classes, fraction, "
        "seed (required; `tumorsynth config turing_study` prints an example)",
    )
    parser.add_argument(
        "--out",
        metavar="STUDY",
        help="the study folder to create (required; must not exist or be empty)",
    )
    add_settings_overrides(parser, "synthetic_fraction=0.25")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_create(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.turing.study import create_study, format_summary
    from tumorsynth.turing.study_settings import load_study

    if not args.study_config:
        raise InputError(
            "--config",
            "a reader study configuration (YAML) is required; `tumorsynth config turing_study` "
            "prints one with every setting",
        )
    if not args.out:
        raise InputError("--out", "the study folder to create is required", fix="add --out STUDY")
    settings = load_study(args.study_config, args.set)
    output = create_study(
        settings, args.out, where=str(args.study_config), progress=not args.no_progress
    )
    print(format_summary(output))
    return 0
