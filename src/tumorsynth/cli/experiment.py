"""``tumorsynth experiment --config FILE``: train, predict and evaluate several arms; one table."""

from __future__ import annotations

import argparse

from tumorsynth.cli._common import add_settings_overrides

#: --config is the experiment configuration (YAML), not a file of option defaults.
CONFIG_IS_INPUT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_overrides(parser, "out_dir=runs/exp2")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.experiment import load_experiment, run_experiment

    if not args.config:
        raise InputError(
            "--config",
            "an experiment configuration file (YAML) is required; `tumorsynth config "
            "experiment` prints one with every setting",
        )
    out = run_experiment(load_experiment(args.config, args.set), progress=not args.no_progress)
    print((out / "comparison.md").read_text(encoding="utf-8"))
    print(f"-> {out / 'comparison.md'}, {out / 'comparison.csv'}")
    return 0
