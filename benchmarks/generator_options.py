"""The generators a benchmark compares: heuristic always, the learned ones when given a checkpoint
(``--diffusion RUN/model``, ``--adversarial RUN/model``)."""

from __future__ import annotations

import argparse


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--diffusion", help="a diffusion checkpoint to compare too")
    parser.add_argument("--adversarial", help="an adversarial checkpoint to compare too")


def generators_from(args: argparse.Namespace, device: str) -> dict[str, object]:
    """``{table name: generator}``: heuristic 1.1, then each learned one given."""
    generators: dict[str, object] = {"heuristic 1.1": "heuristic"}
    if args.diffusion:
        from tumorsynth.generators.diffusion import DiffusionGenerator

        generators["diffusion"] = DiffusionGenerator(args.diffusion, device=device)
    if args.adversarial:
        from tumorsynth.generators.adversarial import AdversarialGenerator

        generators["adversarial"] = AdversarialGenerator(args.adversarial, device=device)
    return generators
