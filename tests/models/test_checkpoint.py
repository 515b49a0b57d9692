import json

import pytest
import torch

from tumorsynth.errors import InputError
from tumorsynth.models.checkpoint import (
    config_differences,
    load_pretrained_state,
    load_state_strict,
    save_pretrained,
)
from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor

SMALL = SegmentorConfig(patch_size=(32, 32, 32), channels=(8, 16, 32))


def test_round_trip_gives_the_same_weights_and_config(tmp_path):
    model = build_segmentor(SMALL)
    save_pretrained(
        model, {"model": SMALL.to_dict(), "organ": "liver"}, tmp_path / "ck", kind="segmentor"
    )
    config, state = load_pretrained_state(tmp_path / "ck", kind="segmentor")
    assert config["organ"] == "liver"
    again = build_segmentor(SegmentorConfig.from_dict(config["model"]))
    load_state_strict(again, state, "ck")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_changed_weights_fail_the_sha256_check(tmp_path):
    save_pretrained(
        build_segmentor(SMALL), {"model": SMALL.to_dict()}, tmp_path / "ck", kind="segmentor"
    )
    weights = tmp_path / "ck" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256"):
        load_pretrained_state(tmp_path / "ck", kind="segmentor")


def test_wrong_kind_and_missing_files_are_named(tmp_path):
    save_pretrained(build_segmentor(SMALL), {}, tmp_path / "ck", kind="segmentor")
    with pytest.raises(InputError, match="autoencoder"):
        load_pretrained_state(tmp_path / "ck", kind="autoencoder")
    with pytest.raises(InputError, match="missing"):
        load_pretrained_state(tmp_path / "nothing", kind="segmentor")


def test_weights_that_do_not_fit_say_what_differs():
    other = SegmentorConfig(patch_size=(32, 32, 32), channels=(8, 16, 64))
    with pytest.raises(InputError, match="shape differs"):
        load_state_strict(build_segmentor(SMALL), build_segmentor(other).state_dict(), "ck")


def test_config_differences_are_readable():
    diff = config_differences(
        {"a": 1, "b": {"c": [1, 2]}, "x": 0}, {"a": 2, "b": {"c": (1, 2)}, "y": 1}
    )
    assert "a: 1 in checkpoint != 2" in diff
    assert any(d.startswith("x: unknown") for d in diff)
    assert any(d.startswith("y: missing") for d in diff)
    assert not any(d.startswith("b.c") for d in diff)
    json.dumps(diff)
