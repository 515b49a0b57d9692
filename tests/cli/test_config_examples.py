"""The shipped example configurations (``configs/``): each loads and passes its checks as
shipped, and each runs through its command for a couple of steps on tiny phantoms, with
``--set`` pointing it at test data and shrinking the model, as a user adapts one."""

import json
from pathlib import Path

import pytest
import yaml
from cli_runner import cli
from tiny import TINY_AE, TINY_DENOISER, write_phantom_dataset

from tumorsynth._settings import load_config
from tumorsynth.cli.config import EXAMPLES, config_class, example_folder, example_path
from tumorsynth.io.datasets import discover_cases
from tumorsynth.pipelines.batch import BatchSettings, run_batch
from tumorsynth.pipelines.synthesize import TumorRequest
from tumorsynth.training.config import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[2]

#: A segmentor small enough for a CPU test (32^3 patches at 4 mm).
TINY_SEGMENTOR = {
    "data.spacing_mm": [4, 4, 4],
    "data.num_workers": 0,
    "model.patch_size": [32, 32, 32],
    "model.channels": [8, 16, 32],
    "optim.max_steps": 2,
    "optim.warmup_steps": 1,
}


def sets(settings: dict) -> list[str]:
    """``--set KEY=VALUE`` arguments (values as JSON, which YAML reads)."""
    return [
        arg for key, value in settings.items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """Two healthy phantoms (labels of the ``phantom`` preset) as an nnU-Net folder."""
    return write_phantom_dataset(tmp_path_factory.mktemp("examples") / "Dataset001_Healthy")


@pytest.fixture(scope="module")
def tumors(healthy, tmp_path_factory) -> Path:
    """The same phantoms with synthetic liver tumors (tumorsynth labels): the annotated data."""
    out = tmp_path_factory.mktemp("examples_tumors")
    settings = BatchSettings((TumorRequest("liver", 2, "medium"),), label_map="phantom", seed=3)
    run_batch(discover_cases(healthy), out, settings, progress=False)
    return out


def test_every_example_is_shipped_in_the_package_and_in_configs():
    shipped = sorted(p.stem for p in example_folder().glob("*.yaml"))
    assert shipped == sorted(EXAMPLES)
    assert (REPOSITORY / "configs").resolve() == example_folder().resolve()


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_loads_as_shipped_and_says_what_to_change(name):
    text = example_path(name).read_text()
    assert "To change" in text and "tumorsynth config" in text
    config = load_config(config_class(EXAMPLES[name]), example_path(name))
    assert getattr(config, "name", None) or config.title  # a reader study has a title


def test_the_synthetic_example_takes_its_label_map_inline():
    config = load_config(TrainConfig, example_path("segmentor_synthetic"))
    assert config.data.healthy_label_map == {
        "liver": 1,
        "pancreas": 3,
        "kidney": 5,
        "spleen": 7,
        "vessel": 8,
        "bone": 9,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["segmentor_synthetic", "segmentor_mixed", "segmentor_real"])
def test_segmentor_examples_train(name, healthy, tumors, tmp_path):
    data = {
        "segmentor_synthetic": {"data.healthy": [str(healthy)]},  # the inline map stays
        "segmentor_mixed": {"data.healthy": [str(healthy)], "data.real": [str(tumors)]},
        "segmentor_real": {"data.real": [str(tumors)], "data.val_fraction": 0.5},
    }[name]
    out = tmp_path / "run"
    overrides = {**TINY_SEGMENTOR, **data, "train.out_dir": str(out)}
    run = cli("train", "--config", example_path(name), "--no-progress", *sets(overrides))
    assert run.code == 0, run.err
    assert "trained 2 steps" in run.out
    stored = json.loads((out / "train_config.json").read_text())
    assert stored["name"] == name and stored["data"]["mode"] == name.split("_")[1]


@pytest.mark.slow
def test_generator_examples_train_one_after_the_other(healthy, tumors, tmp_path):
    ae_out = tmp_path / "ae"
    ae = {
        "data.images": [str(healthy / "imagesTr")],
        "data.val_crops": 1,
        **{f"model.{key}": value for key, value in TINY_AE.items()},
        "optim.max_steps": 2,
        "optim.adv_start": 1,
        "optim.warmup_steps": 1,
        "train.out_dir": str(ae_out),
        "train.device": "cpu",
    }
    run = cli(
        "train-autoencoder", "--config", example_path("autoencoder"), "--no-progress", *sets(ae)
    )
    assert run.code == 0, run.err
    case = discover_cases(tumors)[0]
    diffusion = {
        "autoencoder": str(ae_out / "autoencoder"),
        "data.cases": [{"image": str(case.image), "label": str(case.label)}],
        "data.val_crops": 1,
        **{f"model.{key}": value for key, value in TINY_DENOISER.items()},
        "optim.max_steps": 2,
        "optim.batch_size": 2,
        "optim.warmup_steps": 1,
        "train.out_dir": str(tmp_path / "diffusion"),
        "train.device": "cpu",
    }
    run = cli(
        "train-diffusion", "--config", example_path("diffusion"), "--no-progress", *sets(diffusion)
    )
    assert run.code == 0, run.err
    assert (tmp_path / "diffusion" / "model" / "denoiser" / "config.json").is_file()


@pytest.mark.slow
def test_the_experiment_example_runs(healthy, tumors, tmp_path):
    base = {f"base.{key}": value for key, value in TINY_SEGMENTOR.items()}
    overrides = {
        **base,
        "base.data.healthy": [str(healthy)],
        "base.data.real": [str(tumors)],
        "out_dir": str(tmp_path / "exp"),
        "test": [
            {
                "name": "tumor phantoms",
                "images": str(tumors / "imagesTr"),
                "labels": str(tumors / "labelsTr"),
                "label_map": "tumorsynth",
            }
        ],
        "evaluate.bootstrap": 0,
    }
    config = example_path("experiment_synthetic_vs_mixed")
    run = cli("experiment", "--config", config, "--no-progress", *sets(overrides))
    assert run.code == 0, run.err
    table = (tmp_path / "exp" / "comparison.md").read_text()
    assert "| synthetic |" in table and "| mixed 50% |" in table
    assert yaml.safe_load(config.read_text())["arms"][1]["name"] == "mixed 50%"
