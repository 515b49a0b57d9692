"""``tumorsynth train-diffusion --config FILE``: the learned generator's latent denoiser.

train.out_dir must not hold a previous run (it would be replaced): there is no ``--resume`` yet,
so a new run goes into another folder (``--set train.out_dir=NEW_DIR``).
"""

from __future__ import annotations

import argparse

from tumorsynth.cli._common import add_settings_overrides, settings_overrides

#: --config is the training configuration (YAML), not a file of option defaults.
CONFIG_IS_INPUT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_overrides(parser, "optim.max_steps=500")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.training.diffusion import train_diffusion
    from tumorsynth.training.generative_config import load_diffusion_config

    if not args.config:
        raise InputError("--config", "a diffusion training config file (YAML) is required")
    config = load_diffusion_config(args.config, settings_overrides(args.set))
    result = train_diffusion(config, progress=not args.no_progress)
    print(
        f"trained {result.steps} steps on {result.tumors_per_class} tumors -> "
        f"{result.model_dir} (use: --generator diffusion --checkpoint {result.model_dir}); "
        f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}; samples.png"
    )
    return 0
