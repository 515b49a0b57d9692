"""``tumorsynth config [NAME]``: a complete configuration to start from, printed as YAML.

``NAME`` is a command whose ``--config`` is a configuration (``train``, ``train-autoencoder``,
``train-diffusion``, ``experiment``, ``scaling``: every setting with its default) or a shipped example
(``segmentor_synthetic``, ...: the example's values, defaults elsewhere). Every setting is on its
own line with a one-line description; the output loads back unchanged. Without ``NAME``, the
names are listed with the folder of the examples.
"""

from __future__ import annotations

import argparse
import importlib
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["EXAMPLES", "KINDS", "config_class", "config_text", "example_folder", "example_path"]

#: This command takes no --config of its own.
TAKES_CONFIG = False

#: Command -> (module, class) of its configuration, imported only when asked for (torch).
KINDS: dict[str, tuple[str, str]] = {
    "train": ("tumorsynth.training.config", "TrainConfig"),
    "train-autoencoder": ("tumorsynth.training.generative_config", "AutoencoderTrainConfig"),
    "train-diffusion": ("tumorsynth.training.generative_config", "DiffusionTrainConfig"),
    "train-adversarial": ("tumorsynth.training.adversarial_config", "AdversarialTrainConfig"),
    "experiment": ("tumorsynth.pipelines.experiment", "ExperimentSettings"),
    "scaling": ("tumorsynth.pipelines.scaling", "ScalingSettings"),
    "turing create": ("tumorsynth.turing.study", "StudySettings"),
}
#: Shipped examples (``tumorsynth/configs/NAME.yaml``, also ``configs/`` in the repository) ->
#: the command that runs them.
EXAMPLES: dict[str, str] = {
    "segmentor_synthetic": "train",
    "segmentor_mixed": "train",
    "segmentor_real": "train",
    "autoencoder": "train-autoencoder",
    "diffusion": "train-diffusion",
    "experiment_synthetic_vs_mixed": "experiment",
    "turing_study": "turing create",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help=f"a command ({', '.join(KINDS)}) for its defaults, or an example "
        f"({', '.join(EXAMPLES)}); without it, list them",
    )


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print(names_text(), end="")
    else:
        print(config_text(args.name), end="")
    return 0


def names_text() -> str:
    width = max(map(len, [*KINDS, *EXAMPLES]))
    lines = ["defaults (every setting of the command's --config):"]
    lines += [f"  {name}" for name in KINDS]
    lines.append(f"examples (in {example_folder()}):")
    lines += [f"  {name:<{width}}  for tumorsynth {kind}" for name, kind in EXAMPLES.items()]
    lines.append("print one: tumorsynth config NAME > my.yaml")
    return "\n".join(lines) + "\n"


def config_text(name: str) -> str:
    """The commented YAML ``tumorsynth config NAME`` prints."""
    from tumorsynth._settings import load_config
    from tumorsynth._settings_docs import commented_yaml
    from tumorsynth.errors import InputError

    if name in KINDS:
        config = config_class(name)()
        header = [
            f"Every setting of `tumorsynth {name} --config FILE`, with its default.",
            "Fill in the data to train on; `tumorsynth config` lists complete examples.",
        ]
    elif name in EXAMPLES:
        path = example_path(name)
        config = load_config(config_class(EXAMPLES[name]), path)
        header = [line.removeprefix("#").removeprefix(" ") for line in _leading_comment(path)]
        header += ["", "Every setting follows: the example's values, defaults elsewhere."]
    else:
        raise InputError(
            f"config {name!r}",
            f"expected one of {', '.join([*KINDS, *EXAMPLES])}, found neither",
            fix="`tumorsynth config` lists them",
        )
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    return comments + commented_yaml(config)


def example_folder() -> Path:
    """Where the shipped examples are (inside the installed package)."""
    return Path(str(resources.files("tumorsynth") / "configs"))


def example_path(name: str) -> Path:
    return example_folder() / f"{name}.yaml"


def config_class(command: str) -> Any:
    """The configuration class of ``command`` (imported now: it may need torch)."""
    module, cls = KINDS[command]
    return getattr(importlib.import_module(module), cls)


def _leading_comment(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines
