"""``tumorsynth train-autoencoder --config FILE``: the learned generator's VQ autoencoder.

train.out_dir must not hold a previous run (it would be replaced) unless ``--resume`` continues it
from its ``checkpoints/last`` (same settings; ``optim.max_steps`` may grow). Under ``torchrun
--nproc_per_node N`` it trains with DDP (gloo on CPU, NCCL on GPUs); rank 0 writes.
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
    from tumorsynth.training.autoencoder import train_autoencoder
    from tumorsynth.training.generative_config import AutoencoderTrainConfig

    return run_training(args, AutoencoderTrainConfig, train_autoencoder, _summary)


def _summary(result: Any) -> str:
    return (
        f"trained {result.steps} steps -> {result.out_dir / 'autoencoder'}; held-out "
        f"reconstruction PSNR {result.val_psnr:.2f} dB, SSIM {result.val_ssim:.3f} "
        f"(reconstructions.png); {result.crops_per_second:.1f} crops/s"
    )
