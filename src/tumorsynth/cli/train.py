"""``tumorsynth train --config FILE``: train a tumor segmentor (CPU, GPU, or torchrun DDP)."""

from __future__ import annotations

import argparse
from typing import Any

from tumorsynth.cli._common import add_training_arguments, run_training

#: --config is the training configuration (YAML), not a file of option defaults.
CONFIG_IS_INPUT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, resume=True)


def run(args: argparse.Namespace) -> int:
    from tumorsynth.training.config import TrainConfig
    from tumorsynth.training.segmentation import train_segmentation

    return run_training(args, TrainConfig, train_segmentation, _summary)


def _summary(result: Any) -> str:
    return (
        f"trained {result.steps} steps -> {result.out_dir}; best validation tumor DSC "
        f"{result.best_val_tumor_dsc:.3f} at step {result.best_step}; "
        f"{result.crops_per_second:.1f} crops/s, data loading "
        f"{100 * result.data_time_fraction:.0f}% of step time"
    )
