"""``tumorsynth train-adversarial --config FILE``: the FreeTumor-class generator.

Learns tumor appearance from unlabeled healthy scans (CT + organ masks), a few annotated tumors
and a frozen segmentor (a ``tumorsynth train`` checkpoint), starting from nothing. train.out_dir
must not hold a previous run unless ``--resume`` continues it from ``checkpoints/last`` (same
settings; ``optim.max_steps`` may grow). Under ``torchrun --nproc_per_node N`` it trains with DDP.
"""

from __future__ import annotations

import argparse
from typing import Any

from tumorsynth.cli._common import add_training_arguments, run_training

#: --config is the training configuration (YAML), not a file of option defaults.
CONFIG_IS_INPUT = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, resume=True)


def run(args: argparse.Namespace) -> int:
    from tumorsynth.training.adversarial import train_adversarial
    from tumorsynth.training.adversarial_config import AdversarialTrainConfig

    return run_training(args, AdversarialTrainConfig, train_adversarial, _summary)


def _summary(result: Any) -> str:
    return (
        f"trained {result.steps} steps -> {result.model_dir} (use: --generator adversarial "
        f"--checkpoint {result.model_dir}); the segmentor calls "
        f"{100 * result.val_seg_tumor:.0f}% of the validation tumors' voxels tumor; samples.png"
    )
