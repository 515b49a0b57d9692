import pytest

from tumorsynth._settings import load_config
from tumorsynth.errors import InputError
from tumorsynth.training.config import TrainConfig


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: x\ndata: {mode: synthetic, healthy: [a], healthy_label_map: totalsegmentator, "
        "spacing_mm: [1, 1, 2]}\n"
        "model: {backbone: dynunet, patch_size: [64, 64, 32]}\n"
    )
    config = load_config(TrainConfig, path, {"optim": {"max_steps": 7}})
    assert config.model.backbone == "dynunet" and config.model.patch_size == (64, 64, 32)
    assert config.data.spacing_mm == (1, 1, 2) and config.optim.max_steps == 7
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.classes == {"background": 0, "liver": 1, "liver_tumor": 2}


@pytest.mark.parametrize(
    "data,refused",
    [
        ("{mode: synthetic, healthy: [a]}", "data.healthy_label_map: required"),
        ("{mode: real, real: [b]}", "data.real_label_map: required"),
        ("{mode: synthetic, healthy: [a, {path: c, label_map: msd}]}", "healthy_label_map"),
    ],
)
def test_a_label_map_has_no_default(tmp_path, data, refused):
    # The same id is another organ in each convention: a missing map is refused, naming the key.
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {data}\n")
    with pytest.raises(InputError, match=refused) as caught:
        load_config(TrainConfig, path)
    assert "no default" in str(caught.value)


def test_entries_that_name_their_own_maps_need_no_shared_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {mode: synthetic, healthy: [{path: a, label_map: msd}]}\n")
    assert load_config(TrainConfig, path).data.healthy_label_map is None


@pytest.mark.parametrize(
    "text,match",
    [
        ("nme: x\n", "nme"),
        ("data: {mode: synthetic, healthy: [a], colour: red}\n", "colour"),
        ("data: {mode: real}\n", "real tumors"),
        ("data: {mode: synthetic}\n", "healthy"),
        ("data: {mode: sometimes, healthy: [a]}\n", "mode"),
        (
            "data: {mode: mixed, healthy: [a], real: [b], synthetic_fraction: 1.5}\n",
            "synthetic_fraction",
        ),
        ("data: {healthy: [a]}\nmodel: {backbone: resnet}\n", "backbone"),
        (
            "data: {healthy: [a], healthy_label_map: msd}\nmodel: {out_channels: 2}\n",
            "out_channels",
        ),
        ("- a\n- b\n", "mapping"),
        (
            "data: {healthy: [a], healthy_label_map: msd, filter: {checkpoints: [x], "
            "threshold: 1.5}}\n",
            "filter: --filter-threshold",
        ),
        (
            "data: {healthy: [a], healthy_label_map: msd, filter: {checkpoints: [x], "
            "colour: red}}\n",
            "filter: unknown setting",
        ),
    ],
)
def test_bad_configs_name_the_setting(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_config(TrainConfig, path)
