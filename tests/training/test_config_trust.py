"""The shared config loader checks every value against its field's type and range, names the key
path, and reports all problems of a file together; training data are checked against the patch
before anything is written; a previous run is found before anything is read."""

import warnings
from dataclasses import dataclass, field
from typing import Literal

import pytest
from tiny import tiny_config

from tumorsynth._settings import Interval, check_bounds, config_from_dict, load_config
from tumorsynth.errors import InputError
from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.experiment import load_experiment
from tumorsynth.training.common import refuse_previous_run
from tumorsynth.training.config import TrainConfig
from tumorsynth.training.data import CaseItem, check_patch_fits, resampled_shape, split_cases
from tumorsynth.training.generative_config import AutoencoderTrainConfig, DiffusionTrainConfig


@dataclass(frozen=True)
class Inner:
    size: tuple[int, int, int] = (1, 2, 3)
    kind: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    limit: float | None = None
    items: tuple[str, ...] = ()
    options: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"count": "ten"}, "count: expected an integer, found 'ten' (str)"),
        ({"count": 1.5}, "count: expected an integer, found 1.5 (float)"),
        ({"count": True}, "count: expected an integer, found True (bool)"),
        ({"rate": "fast"}, "rate: expected a number, found 'fast' (str)"),
        ({"rate": float("nan")}, "rate: expected a finite number, found nan"),
        ({"rate": False}, "rate: expected a number, found False (bool)"),
        ({"flag": 1}, "flag: expected true or false, found 1 (int)"),
        ({"name": 3}, "name: expected a string, found 3 (int)"),
        ({"limit": "x"}, "limit: expected a number or null, found 'x' (str)"),
        (
            {"items": "a"},
            "items: expected a list (each a string), found 'a' (str) "
            "(one entry is written as a list: [a])",
        ),
        ({"items": ["a", 2]}, "items[1]: expected a string, found 2 (int)"),
        ({"options": [1]}, "options: expected a mapping, found [1] (list)"),
        ({"options": {"k": "v"}}, "options.k: expected a number, found 'v' (str)"),
        ({"inner": {"size": 3}}, "inner.size: expected 3 integers, found 3 (int)"),
        ({"inner": {"size": [1, 2]}}, "inner.size: expected 3 integers, found 2 values [1, 2]"),
        ({"inner": {"kind": "c"}}, "inner.kind: expected one of 'a', 'b', found 'c' (str)"),
        (
            {"inner": {"knid": "a"}},
            "inner: unknown setting(s) ['knid']; known are ['kind', 'size']",
        ),
        ({"inner": 4}, "inner: expected a mapping of settings, found 4 (int)"),
    ],
)
def test_each_value_is_checked_against_its_annotation(data, message):
    with pytest.raises(InputError) as info:
        config_from_dict(Outer, data, "c.yaml")
    assert str(info.value) == f"c.yaml: {message}"


def test_values_are_normalized_and_integral_floats_are_integers():
    config = config_from_dict(
        Outer,
        {"count": 2.0, "rate": 1, "items": ["a"], "limit": None, "inner": {"size": [4, 5, 6]}},
        "c.yaml",
    )
    assert config.count == 2 and isinstance(config.count, int)
    assert config.rate == 1.0 and isinstance(config.rate, float)
    assert config.items == ("a",) and config.inner.size == (4, 5, 6)
    assert config_from_dict(Outer, {"inner": None}, "c.yaml").inner == Inner()


def test_all_problems_are_reported_together_under_a_key_path():
    with pytest.raises(InputError) as info:
        config_from_dict(
            Outer, {"count": "x", "rate": "y", "extra": 1}, "f.json", key_path="config"
        )
    text = str(info.value)
    assert text.startswith("f.json: 3 settings are wrong")
    for part in ("config.count: expected", "config.rate: expected", "config: unknown setting(s)"):
        assert part in text


def test_a_key_given_twice_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 0.1}\ndata: {healthy: [a]}\noptim: {max_steps: 3}\n")
    with pytest.raises(InputError, match=r"c.yaml: line 3: 'optim' is given twice"):
        load_config(TrainConfig, path)
    path.write_text("data: {healthy: [a], mode: real, mode: mixed}\n")
    with pytest.raises(InputError, match=r"line 1: 'mode' is given twice"):
        load_config(TrainConfig, path)


def test_complete_requires_every_key():
    """Checkpoint configs store every field: a missing one names the key."""
    with pytest.raises(InputError, match=r"config.json: inner.kind: required setting is missing"):
        config_from_dict(
            Outer,
            {**vars(Outer()), "inner": {"size": [1, 2, 3]}},
            "config.json",
            complete=True,
        )


def test_bounds_name_the_setting_and_the_range():
    config = Outer(rate=-1.0, inner=Inner(size=(1, 0, 3)))
    with pytest.raises(InputError) as info:
        check_bounds(
            config,
            {"rate": Interval(0, low_open=True), "inner.size": Interval(1), "limit": Interval(0)},
            "c.yaml",
        )
    assert "rate: expected a value > 0, found -1.0" in str(info.value)
    assert "inner.size: expected a value >= 1, found (1, 0, 3)" in str(info.value)
    assert Interval(0, 1, high_open=True).describe() == ">= 0 and < 1"


@pytest.mark.parametrize(
    "cls,data,message",
    [
        (TrainConfig, {"optim": {"max_steps": "ten"}}, "optim.max_steps: expected an integer"),
        (TrainConfig, {"model": {"patch_size": 32}}, "model.patch_size: expected 3 integers"),
        (TrainConfig, {"data": {"healthy": 5}}, "data.healthy: expected a list"),
        (TrainConfig, {"data": {"hu_window": [250, -175]}}, "data.hu_window: expected (low, high)"),
        (TrainConfig, {"train": {"sw_overlap": 1.0}}, "train.sw_overlap: expected a value"),
        (AutoencoderTrainConfig, {"model": {"crop_size": 0}}, "model.crop_size: expected a value"),
        (AutoencoderTrainConfig, {"optim": {"lr": 0}}, "optim.lr: expected a value > 0"),
        (DiffusionTrainConfig, {"model": {"beta_end": 2}}, "model.beta_end: expected a value"),
        (DiffusionTrainConfig, {"data": {"scale_range": [1.2, 0.8]}}, "data.scale_range"),
    ],
)
def test_training_configs_check_types_and_ranges(cls, data, message):
    base = {
        TrainConfig: {"data": {"healthy": ["a"], "healthy_label_map": "msd"}},
        AutoencoderTrainConfig: {"data": {"images": ["a"]}},
        DiffusionTrainConfig: {"autoencoder": "ae", "data": {"cases": ["a"], "label_map": "msd"}},
    }[cls]
    merged = {**base, **data}
    merged["data"] = {**base.get("data", {}), **data.get("data", {})}
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cls.from_dict(merged, "c.yaml")


def test_a_saved_config_loads_back_equal():
    config = TrainConfig.from_dict(
        {"seed": 3, "data": {"healthy": ["a"], "healthy_label_map": "msd", "spacing_mm": None}}
    )
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_experiment_test_sets_are_checked_by_the_same_loader(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(
        "name: x\nout_dir: o\nbase: {data: {healthy: [d], healthy_label_map: msd}}\narms: [{name: a}]\n"
        "test: [{name: t, images: i, label_map: lits}]\n"
    )
    with pytest.raises(InputError, match=r"e.yaml: test\[0\].labels: required setting is missing"):
        load_experiment(path)
    path.write_text(
        "name: x\nout_dir: o\nbase: {data: {healthy: [d], healthy_label_map: msd}}\n"
        "arms: [{name: a, set: {optim.lr: fast}}]\ntest: []\n"
    )
    with pytest.raises(InputError, match=r"arm 'a': optim.lr: expected a number"):
        load_experiment(path)
    path.write_text(
        "name: x\nout_dir: o\nbase: {data: {healthy: [d], healthy_label_map: msd}}\narms: [{name: a}]\ntest: []\n"
        "evaluate: {tolerance_mm: wide}\n"
    )
    with pytest.raises(InputError, match=r"evaluate.tolerance_mm: expected a number"):
        load_experiment(path)


def test_every_arm_and_test_folder_of_an_experiment_is_checked_before_training(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(
        "base: {data: {healthy: [d], healthy_label_map: msd}}\n"
        "arms: [{name: a, set: {optim.lr: fast}}, {name: b, set: {data.real_label_map: nope}}]\n"
        f"test: [{{name: t, images: {tmp_path}, labels: {tmp_path / 'gone'}, label_map: lits}}]\n"
    )
    with pytest.raises(InputError) as info:
        load_experiment(path)
    assert "arm 'a': optim.lr: expected a number" in str(info.value)
    assert "arm 'b': data.real_label_map: expected a preset" not in str(info.value)  # unused
    path.write_text(path.read_text().replace("optim.lr: fast", "optim.lr: 0.1"))
    with pytest.raises(InputError, match=r"test\[0\].labels: expected a folder, found none"):
        load_experiment(path)
    path.write_text(path.read_text().replace("{data.real_label_map: nope}", "{data.mode: real}"))
    with pytest.raises(InputError, match=r"arm 'b': data.mode: 'real' needs scans with real"):
        load_experiment(path, ["out_dir=elsewhere"])


def test_the_patch_is_checked_against_the_resampled_images(phantom_dataset, tmp_path):
    settings = tiny_config(phantom_dataset, tmp_path / "run")
    config = TrainConfig.from_dict(settings)
    train, _ = split_cases(config)
    # the phantoms are 96 x 80 x 48 voxels of 4 x 4 x 5 mm
    assert resampled_shape(train[0].image, (4.0, 4.0, 4.0)) == (96, 80, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_patch_fits(config, train, (4.0, 4.0, 4.0))  # 32^3 fits: silent
    wide = TrainConfig.from_dict({**settings, "model": {"patch_size": [100, 80, 60]}})
    with pytest.raises(InputError, match=r"model.patch_size.*at most 96 x 80 x 60 voxels"):
        check_patch_fits(wide, train, (4.0, 4.0, 4.0))
    # larger than some images only: their crops are padded, with a warning naming them
    ct, _ = make_phantom(0, shape=(40, 40, 20), spacing_mm=(4.0, 4.0, 5.0))
    small = CaseItem(
        "healthy:small", str(save_volume(ct, tmp_path / "small.nii.gz")), "", "healthy", "phantom"
    )
    medium = TrainConfig.from_dict({**settings, "model": {"patch_size": [48, 48, 48]}})
    with pytest.warns(
        UserWarning,
        match=r"larger than 1 of 3 .*healthy:small: 40 x 40 x 25.*at most 40 x 40 x 25 voxels pads none",
    ):
        check_patch_fits(medium, [*train, small], (4.0, 4.0, 4.0))


def test_a_previous_run_is_named_with_its_state(tmp_path):
    refuse_previous_run(tmp_path / "none", command="train", can_resume=True)  # no folder: fine
    (tmp_path / "run").mkdir()
    refuse_previous_run(tmp_path / "run", command="train", can_resume=True)  # empty: fine
    (tmp_path / "run" / "summary.json").write_text("not json")
    with pytest.raises(InputError, match=r"a finished training run \(summary.json\).*--resume"):
        refuse_previous_run(tmp_path / "run", command="train", can_resume=True)
