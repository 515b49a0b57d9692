"""``tumorsynth train --config FILE``: train a tumor segmentor (CPU, GPU, or torchrun DDP)."""

from __future__ import annotations

import argparse
import os

from tumorsynth.cli._common import add_settings_overrides, settings_overrides

#: --config is the training configuration (YAML), not a file of option defaults.
CONFIG_IS_INPUT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in train.out_dir from its checkpoints/last (with the same "
        "settings; optim.max_steps may grow). Without it, an out_dir that holds a run is refused",
    )
    add_settings_overrides(parser, "optim.max_steps=500")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.training.config import load_train_config
    from tumorsynth.training.segmentation import train_segmentation

    if not args.config:
        raise InputError("--config", "a training config file (YAML) is required")
    config = load_train_config(args.config, settings_overrides(args.set))
    result = train_segmentation(config, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports
    print(
        f"trained {result.steps} steps -> {result.out_dir}; best validation tumor DSC "
        f"{result.best_val_tumor_dsc:.3f} at step {result.best_step}; "
        f"{result.crops_per_second:.1f} crops/s, data loading "
        f"{100 * result.data_time_fraction:.0f}% of step time"
    )
    return 0
