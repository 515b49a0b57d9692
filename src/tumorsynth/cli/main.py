"""The ``tumorsynth`` command: one entry point, one thin module per subcommand.

Only argparse is imported here; a subcommand's module imports the library when it runs, so
``tumorsynth --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tumorsynth import __version__

__all__ = ["build_parser", "main"]

#: Subcommand -> module in tumorsynth.cli with ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS = {
    "synthesize": ("synthesize", "put synthetic tumors into one CT or a whole dataset"),
    "replay": ("replay", "reproduce a manifest's tumors voxel for voxel"),
    "preview": ("preview", "PNG montages of the tumors of a manifest or a labelled scan"),
    "demo": ("demo", "the main job on an embedded abdominal CT phantom (no data needed)"),
    "train-autoencoder": (
        "train_autoencoder",
        "train the learned generator's VQ autoencoder on CT crops (no labels needed)",
    ),
    "train-diffusion": (
        "train_diffusion",
        "train the learned generator's latent diffusion model on annotated tumors",
    ),
    "train-adversarial": (
        "train_adversarial",
        "train the adversarial generator on unlabeled healthy CT, a few tumors and a segmentor",
    ),
    "train": ("train", "train a tumor segmentor on real, synthetic or mixed data"),
    "predict": ("predict", "segment CTs with a trained checkpoint"),
    "experiment": ("experiment", "train, predict and evaluate several arms into one table"),
    "scaling": (
        "scaling",
        "the data-scaling study: real scans x synthetic settings x seeds, curves and a table",
    ),
    "export-nnunet": (
        "export_nnunet",
        "write a synthetic or mixed dataset in nnU-Net v2 raw format",
    ),
    "evaluate": ("evaluate", "DSC, NSD, lesion and patient-level detection of predicted tumors"),
    "realism": (
        "realism",
        "are synthetic tumors realistic? radiomics, a classifier two-sample test, a report",
    ),
    "turing": (
        "turing",
        "a Visual Turing Test: readers tell real from synthetic tumors in their browser",
    ),
    "config": ("config", "print a complete configuration (defaults or an example) to start from"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tumorsynth",
        description="Realistic synthetic tumors in healthy CT, at native spacing.",
    )
    parser.add_argument("--version", action="version", version=f"tumorsynth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        command = importlib.import_module(f"tumorsynth.cli.{module}")
        if getattr(command, "TAKES_CONFIG", True):
            child.add_argument(
                "--config",
                metavar="FILE",
                help="the configuration (YAML); `tumorsynth config` prints complete ones"
                if getattr(command, "CONFIG_IS_INPUT", False)
                else "YAML or JSON file of option defaults (command-line flags win)",
            )
        command.add_arguments(child)
        child.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from tumorsynth.cli._common import apply_config, run_guarded

    def dispatch(parsed: argparse.Namespace) -> int:
        module = importlib.import_module(f"tumorsynth.cli.{parsed._module}")
        # For most commands --config holds option defaults; for train it is the training config.
        if getattr(parsed, "config", None) and not getattr(module, "CONFIG_IS_INPUT", False):
            parsed = apply_config(parser, argv, parsed)
        return int(module.run(parsed) or 0)

    return run_guarded(dispatch, args)


if __name__ == "__main__":
    raise SystemExit(main())
