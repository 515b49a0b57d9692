"""``tumorsynth scaling --config FILE``: the data-scaling study, real scans x synthetic settings x
seeds, each arm trained and evaluated on fixed test sets; a table and scaling curves."""

from __future__ import annotations

import argparse

from tumorsynth.cli._common import add_settings_overrides

#: --config is the study's configuration (YAML), not a file of option defaults.
CONFIG_IS_INPUT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_overrides(parser, "seeds=[0,1,2]")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.scaling import load_scaling, run_scaling

    if not args.config:
        raise InputError(
            "--config",
            "a scaling study configuration file (YAML) is required; `tumorsynth config "
            "scaling` prints one with every setting",
        )
    config = load_scaling(args.config, args.set)
    print(f"{config.name}: {len(config.arms)} arms ({', '.join(config.curves)})")
    out = run_scaling(config, progress=not args.no_progress)
    print((out / "scaling.md").read_text(encoding="utf-8"))
    figures = sorted(out.glob("scaling_*.png"))
    print(f"-> {out / 'scaling.md'}, {out / 'scaling.csv'}" + "".join(f", {f}" for f in figures))
    return 0
