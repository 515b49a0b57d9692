"""``tumorsynth train-autoencoder --config FILE``: the learned generator's VQ autoencoder.

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
    from tumorsynth.training.autoencoder import train_autoencoder
    from tumorsynth.training.generative_config import load_autoencoder_config

    if not args.config:
        raise InputError("--config", "an autoencoder training config file (YAML) is required")
    config = load_autoencoder_config(args.config, settings_overrides(args.set))
    result = train_autoencoder(config, progress=not args.no_progress)
    print(
        f"trained {result.steps} steps -> {result.out_dir / 'autoencoder'}; held-out "
        f"reconstruction PSNR {result.val_psnr:.2f} dB, SSIM {result.val_ssim:.3f} "
        f"(reconstructions.png); {result.crops_per_second:.1f} crops/s"
    )
    return 0
