import csv
from pathlib import Path

import pytest
import yaml
from tiny import phantom_test_set, tiny_config, write_phantom_dataset

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import discover_cases
from tumorsynth.pipelines.batch import BatchSettings, run_batch
from tumorsynth.pipelines.experiment import load_experiment, run_experiment
from tumorsynth.pipelines.synthesize import TumorRequest


@pytest.fixture(scope="module")
def phantom_dataset(tmp_path_factory) -> Path:
    """An nnU-Net folder of three small healthy phantoms (labels: the "phantom" preset)."""
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "Dataset001_Phantom", cases=3)


@pytest.fixture(scope="module")
def test_set(phantom_dataset, tmp_path_factory) -> Path:
    """Phantoms with synthetic liver tumors standing in for a labelled test set."""
    out = tmp_path_factory.mktemp("testset")
    run_batch(
        discover_cases(phantom_dataset)[:2],
        out,
        BatchSettings((TumorRequest("liver", 2, "medium"),), label_map="phantom", seed=9),
        progress=False,
    )
    return out


def write_experiment(tmp_path, phantom_dataset, test_set) -> Path:
    base = tiny_config(phantom_dataset, tmp_path / "unused")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    exp = {
        "name": "tiny experiment",
        "out_dir": str(tmp_path / "exp"),
        "base": "base.yaml",
        "arms": [
            {"name": "synthetic medium", "set": {"data.tumor_size": "medium"}},
            {"name": "synthetic small", "set": {"data.tumor_size": "small", "optim.max_steps": 4}},
        ],
        "test": [phantom_test_set(test_set)],
        "evaluate": {"bootstrap": 50},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def test_arms_inherit_the_base_and_apply_their_overrides(tmp_path, phantom_dataset, test_set):
    config = load_experiment(write_experiment(tmp_path, phantom_dataset, test_set))
    medium, small = config.arms
    assert medium.train.data.tumor_size == "medium" and small.train.data.tumor_size == "small"
    assert small.train.optim.max_steps == 4 and medium.train.optim.max_steps == 8
    assert medium.train.train.out_dir != small.train.train.out_dir


@pytest.mark.slow
def test_experiment_writes_one_table_and_resumes(tmp_path, phantom_dataset, test_set):
    path = write_experiment(tmp_path, phantom_dataset, test_set)
    out = run_experiment(load_experiment(path), progress=False)
    table = (out / "comparison.md").read_text()
    assert (
        "synthetic medium" in table and "synthetic small" in table and "phantom liver: DSC" in table
    )
    with open(out / "comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["arm"] for r in rows] == ["synthetic medium", "synthetic small"]
    assert all(0.0 <= float(r["dsc_mean"]) <= 1.0 for r in rows)
    report = out / "arms" / "synthetic_medium" / "evaluation" / "phantom_liver" / "report.json"
    stamp = report.stat().st_mtime_ns
    run_experiment(load_experiment(path), progress=False)  # finished arms are not redone
    assert report.stat().st_mtime_ns == stamp


def test_bad_experiment_configs_are_named(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("name: x\nout_dir: o\narms: []\n")
    with pytest.raises(InputError, match="test"):
        load_experiment(path)
    path.write_text(
        "name: x\nout_dir: o\narms: [{name: a}, {name: a}]\ntest: []\nbase: {data: {healthy: [d]}}\n"
    )
    with pytest.raises(InputError, match="distinct"):
        load_experiment(path)
