"""``tumorsynth train-diffusion --config FILE``: the learned generator's latent denoiser.

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
    from tumorsynth.training.diffusion import train_diffusion
    from tumorsynth.training.generative_config import DiffusionTrainConfig

    return run_training(args, DiffusionTrainConfig, train_diffusion, _summary)


def _summary(result: Any) -> str:
    return (
        f"trained {result.steps} steps on {result.tumors_per_class} tumors -> "
        f"{result.model_dir} (use: --generator diffusion --checkpoint {result.model_dir}); "
        f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}; samples.png"
    )
