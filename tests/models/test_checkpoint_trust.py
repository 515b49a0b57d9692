"""Checkpoints pin every file that shapes the voxels: a denoiser is refused beside another
autoencoder (even one with the same config), an edited or NaN-holding config.json is refused
naming the file and the key, a missing or mistyped setting is named for every learned component,
and records made by other files do not replay (tiny untrained checkpoints, CPU)."""

import hashlib
import json
import shutil
import warnings
from dataclasses import asdict

import numpy as np
import pytest
from tiny import rehashed_edit, replay_phantom, synthesize_phantom, tiny_diffusion

from tumorsynth.errors import InputError
from tumorsynth.generators.diffusion import DiffusionGenerator
from tumorsynth.models.checkpoint import load_checkpoint, save_pretrained
from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor
from tumorsynth.models.tumor_diffusion import TumorDiffusion, load_autoencoder

SMALL = SegmentorConfig(patch_size=(32, 32, 32), channels=(8, 16, 32))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two tiny checkpoints with identical configs and different weights (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("trust")
    tiny_diffusion(seed=0).save_pretrained(root / "a")
    tiny_diffusion(seed=1).save_pretrained(root / "b")
    return root


@pytest.fixture
def model(saved, tmp_path):
    """A fresh copy of checkpoint ``a`` to damage."""
    return shutil.copytree(saved / "a", tmp_path / "m")


def test_a_denoiser_beside_another_autoencoder_with_the_same_config_is_refused(saved, model):
    a, b = (json.loads((saved / x / "autoencoder" / "config.json").read_text()) for x in "ab")
    assert a["config"] == b["config"] and a["sha256"] != b["sha256"]
    shutil.rmtree(model / "autoencoder")
    shutil.copytree(saved / "b" / "autoencoder", model / "autoencoder")
    with pytest.raises(InputError) as err:
        TumorDiffusion.from_pretrained(model)
    message = str(err.value)
    assert str(model / "autoencoder") in message and str(model / "denoiser") in message
    assert "is not the autoencoder the denoiser" in message
    assert a["config_sha256"][:12] in message or a["sha256"][:12] in message
    assert b["config_sha256"][:12] in message or b["sha256"][:12] in message


def test_the_saved_model_names_every_file_that_shapes_the_voxels(saved):
    loaded = TumorDiffusion.from_pretrained(saved / "a")
    assert sorted(loaded.files) == [
        "autoencoder/config.json",
        "autoencoder/model.safetensors",
        "denoiser/config.json",
        "denoiser/model.safetensors",
    ]
    fresh = tiny_diffusion(seed=0)
    fresh.save_pretrained(saved / "again")
    assert fresh.files == loaded.files and fresh.sha256 == loaded.sha256
    other = TumorDiffusion.from_pretrained(saved / "b")
    assert other.files["denoiser/config.json"] != loaded.files["denoiser/config.json"]  # pins


@pytest.mark.parametrize(
    "part, old, new, key",
    [
        ("autoencoder", '"commitment_cost": 0.25', '"commitment_cost": NaN', "commitment_cost"),
        ("autoencoder", "-175.0", "-Infinity", "config.hu_window[0]"),
        ("denoiser", '"scale_factor": 1.0', '"scale_factor": NaN', "config.scale_factor"),
        ("denoiser", '"beta_end": 0.0195', '"beta_end": 1e999', "config.denoiser.beta_end"),
    ],
)
def test_nan_or_infinity_in_a_config_json_is_refused_naming_the_key(model, part, old, new, key):
    path = model / part / "config.json"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError, match="NaN or infinite") as err:
        TumorDiffusion.from_pretrained(model)
    assert str(path) in str(err.value) and key in str(err.value)


@pytest.mark.parametrize(
    "part, old, new",
    [
        ("denoiser", '"scale_factor": 1.0', '"scale_factor": 1.5'),
        ("denoiser", '"num_train_timesteps": 50', '"num_train_timesteps": 40'),
        ("autoencoder", '"hu_window": [\n      -175.0', '"hu_window": [\n      -100.0'),
    ],
)
def test_a_config_json_edited_into_other_valid_json_is_refused_by_its_hash(model, part, old, new):
    path = model / part / "config.json"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    json.loads(path.read_text())  # still valid JSON
    with pytest.raises(InputError, match="does not match the recorded config_sha256") as err:
        TumorDiffusion.from_pretrained(model)
    assert str(path) in str(err.value)


def test_whitespace_and_key_order_do_not_change_a_config_hash(model):
    before = TumorDiffusion.from_pretrained(model).files
    path = model / "denoiser" / "config.json"
    meta = json.loads(path.read_text())
    rewritten = json.dumps(dict(reversed(list(meta.items()))))  # other key order, no indent
    assert rewritten != path.read_text()
    path.write_text(rewritten)
    assert TumorDiffusion.from_pretrained(model).files == before
    assert before["denoiser/config.json"] == meta["config_sha256"]


@pytest.mark.parametrize(
    "part, edit, key",
    [
        ("autoencoder", lambda m: m["config"].update(channels="abc"), "config.channels"),
        ("autoencoder", lambda m: m["config"].pop("embedding_dim"), "config.embedding_dim"),
        ("autoencoder", lambda m: m["config"].update(crop_size=16.5), "config.crop_size"),
        ("autoencoder", lambda m: m["config"].update(hu_window=[0, "x"]), "config.hu_window"),
        (
            "denoiser",
            lambda m: m["config"]["denoiser"].update(num_res_blocks="two"),
            "config.denoiser.num_res_blocks",
        ),
        (
            "denoiser",
            lambda m: m["config"]["denoiser"].pop("sample_steps"),
            "config.denoiser.sample_steps",
        ),
        (
            "denoiser",
            lambda m: m["config"]["denoiser"].update(attention_levels=[0, 1]),
            "config.denoiser.attention_levels",
        ),
        ("denoiser", lambda m: m["config"].pop("scale_factor"), "config.scale_factor"),
        ("denoiser", lambda m: m["config"].update(scale_factor="1"), "config.scale_factor"),
        ("denoiser", lambda m: m["config"].update(trained_size_classes=[3]), "size_classes"),
        ("denoiser", lambda m: m["config"].update(denoiser=[1, 2]), "mapping"),
        ("denoiser", lambda m: m.pop("config"), "'config'"),
        ("denoiser", lambda m: m.update(sha256=7), "'sha256'"),
    ],
)
def test_a_missing_or_mistyped_setting_is_named_with_its_file(model, part, edit, key):
    rehashed_edit(model / part, edit)
    with pytest.raises(InputError) as err:
        TumorDiffusion.from_pretrained(model)
    assert str(model / part / "config.json") in str(err.value)
    assert key in str(err.value)


def test_an_autoencoder_alone_names_a_mistyped_setting(model):
    rehashed_edit(model / "autoencoder", lambda m: m["config"].update(num_embeddings=[32]))
    with pytest.raises(InputError, match="config.num_embeddings: expected an integer, found"):
        load_autoencoder(model / "autoencoder")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"channels": "abc"}, r"config.model.channels: expected a list \(each an integer\)"),
        ({"backbone": "resnet"}, "config.model.backbone: expected one of"),
        ({"patch_size": [32, 32]}, "config.model.patch_size: expected 3 integers"),
        ({"dropout": None}, "config.model.dropout: expected a number"),
        ({"swin_v2": "no"}, "config.model.swin_v2: expected true or false"),
    ],
)
def test_a_segmentor_config_names_a_mistyped_setting(change, message):
    with pytest.raises(InputError, match=message) as err:
        SegmentorConfig.from_dict({**SMALL.to_dict(), **change}, "ck/config.json")
    assert str(err.value).startswith("ck/config.json: config.model.")


def test_a_segmentor_config_names_a_missing_setting():
    data = SMALL.to_dict()
    del data["out_channels"]
    with pytest.raises(InputError, match="config.model.out_channels: required setting is missing"):
        SegmentorConfig.from_dict(data, "ck/config.json")
    assert SegmentorConfig.from_dict(SMALL.to_dict()) == SMALL


def test_a_segmentor_config_json_edited_or_holding_nan_is_refused(tmp_path):
    save_pretrained(build_segmentor(SMALL), {"model": SMALL.to_dict()}, tmp_path / "s", kind="seg")
    path = tmp_path / "s" / "config.json"
    original = path.read_text()
    path.write_text(original.replace('"dropout": 0.0', '"dropout": 0.5'))
    with pytest.raises(InputError, match="config_sha256"):
        load_checkpoint(tmp_path / "s", kind="seg")
    path.write_text(original.replace('"dropout": 0.0', '"dropout": NaN'))
    with pytest.raises(InputError, match="'config.model.dropout' is NaN"):
        load_checkpoint(tmp_path / "s", kind="seg")


def test_truncated_weights_are_named_even_when_their_hash_was_updated(model):
    weights = model / "denoiser" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InputError, match="changed or truncated") as err:
        TumorDiffusion.from_pretrained(model)
    assert str(weights) in str(err.value)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    rehashed_edit(model / "denoiser", lambda m: m.update(sha256=digest))
    with pytest.raises(InputError, match="expected a safetensors file") as err:
        TumorDiffusion.from_pretrained(model)
    assert str(weights) in str(err.value)


def test_changed_autoencoder_weights_are_named(model):
    weights = model / "autoencoder" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="changed or truncated") as err:
        TumorDiffusion.from_pretrained(model)
    assert str(weights) in str(err.value)


def test_a_checkpoint_written_before_the_pins_loads_with_a_warning(model):
    for part in ("autoencoder", "denoiser"):
        path = model / part / "config.json"
        meta = json.loads(path.read_text())
        meta.pop("config_sha256")
        meta.pop("requires", None)
        path.write_text(json.dumps(meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = TumorDiffusion.from_pretrained(model)
    text = " ".join(str(w.message) for w in caught)
    assert "config_sha256" in text and "pinned their autoencoder" in text
    assert len(loaded.files) == 4


# -- records pin the files -------------------------------------------------------------------------
def _synth(phantom, gen):
    return synthesize_phantom(phantom, gen, count=1, rng=3)


def test_records_pin_every_file_and_a_moved_checkpoint_replays(phantom, saved, tmp_path):
    gen = DiffusionGenerator(saved / "a", device="cpu")
    out = _synth(phantom, gen)
    appearance = out.records[0].appearance
    assert appearance["weights_sha256"] == gen.model.files and len(gen.model.files) == 4
    assert out.records[0].generator_version == gen.version
    moved = shutil.copytree(saved / "a", tmp_path / "moved")
    again = replay_phantom(phantom, out.records, DiffusionGenerator(moved, device="cpu"))
    assert np.array_equal(again.image, out.image)


def test_records_do_not_replay_on_a_consistently_repinned_autoencoder_swap(
    phantom, saved, tmp_path
):
    """Another autoencoder of the same config, with the denoiser's pin rewritten to match: the
    checkpoint loads, but the records it did not make are refused (today they replay to other
    voxels under the same version)."""
    out = _synth(phantom, DiffusionGenerator(saved / "a", device="cpu"))
    swapped = shutil.copytree(saved / "a", tmp_path / "swapped")
    shutil.rmtree(swapped / "autoencoder")
    shutil.copytree(saved / "b" / "autoencoder", swapped / "autoencoder")
    pins = json.loads((saved / "b" / "denoiser" / "config.json").read_text())["requires"]
    rehashed_edit(swapped / "denoiser", lambda m: m.update(requires=pins))
    other = DiffusionGenerator(swapped, device="cpu")
    with pytest.raises(InputError, match="replay would not be exact"):
        replay_phantom(phantom, out.records, other)


def test_a_record_whose_file_hashes_differ_is_refused_naming_the_file(phantom, saved):
    gen = DiffusionGenerator(saved / "a", device="cpu")
    out = _synth(phantom, gen)
    record = out.records[0]
    pinned = dict(record.appearance["weights_sha256"])
    pinned["autoencoder/config.json"] = "0" * 64
    record.appearance["weights_sha256"] = pinned  # the version is left as it was
    with pytest.raises(InputError, match=r"autoencoder/config\.json: record 000000000000"):
        replay_phantom(phantom, [record], gen)
    del record.appearance["weights_sha256"]
    with pytest.raises(InputError, match="no weights_sha256"):
        replay_phantom(phantom, [record], gen)


def test_an_unsaved_model_has_no_identity_until_saved(tmp_path):
    model = tiny_diffusion(seed=2)
    assert model.files == {} and model.sha256 == ""
    model.save_pretrained(tmp_path / "m")
    assert len(model.sha256) == 64
    assert asdict(model.config) == asdict(TumorDiffusion.from_pretrained(tmp_path / "m").config)
