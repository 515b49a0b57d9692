"""A damaged or mismatched diffusion checkpoint through the CLI: ``synthesize --generator diffusion
--checkpoint DIR`` exits 2 with a message naming the file (and the key), writes nothing and leaves
its inputs as they were; ``replay --checkpoint NEWDIR`` accepts a moved checkpoint and refuses one
made of other files (tiny untrained checkpoints on the phantom, CPU)."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_runner import cli
from file_checks import file_hashes
from tiny import rehashed_edit, tiny_diffusion

from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt_cli")
    ct, seg = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    return save_volume(ct, root / "ct.nii.gz"), save_volume(seg, root / "label.nii.gz")


@pytest.fixture(scope="module")
def other_autoencoder(tmp_path_factory):
    """The autoencoder of a checkpoint with the same config and other weights."""
    folder = tmp_path_factory.mktemp("other") / "model"
    tiny_diffusion(seed=1).save_pretrained(folder)
    return folder


def synthesize(scan, checkpoint, out):
    ct, label = scan
    return cli(
        "synthesize",
        "--image",
        ct,
        "--label",
        label,
        "--label-map",
        "phantom",
        "--organ",
        "liver",
        "--count",
        "1",
        "--size",
        "small",
        "--generator",
        "diffusion",
        "--checkpoint",
        checkpoint,
        "--device",
        "cpu",
        "--out",
        out,
        "--no-progress",
    )


def text_edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def swap_autoencoder(model: Path, other: Path) -> None:
    shutil.rmtree(model / "autoencoder")
    shutil.copytree(other / "autoencoder", model / "autoencoder")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


DAMAGE = {
    "other autoencoder, same config": (
        lambda m, o: swap_autoencoder(m, o),
        "autoencoder",
        "is not the autoencoder the denoiser",
    ),
    "NaN in the denoiser config": (
        lambda m, o: text_edit(
            m / "denoiser" / "config.json", '"scale_factor": 1.0', '"scale_factor": NaN'
        ),
        "denoiser/config.json",
        "'config.scale_factor' is NaN",
    ),
    "valid JSON edit": (
        lambda m, o: text_edit(
            m / "autoencoder" / "config.json", '"crop_size": 16', '"crop_size": 32'
        ),
        "autoencoder/config.json",
        "does not match the recorded config_sha256",
    ),
    "mistyped key": (
        lambda m, o: rehashed_edit(m / "autoencoder", lambda c: c["config"].update(channels="abc")),
        "autoencoder/config.json",
        "config.channels: expected a list (each an integer), found 'abc'",
    ),
    "missing key": (
        lambda m, o: rehashed_edit(m / "autoencoder", lambda c: c["config"].pop("embedding_dim")),
        "autoencoder/config.json",
        "config.embedding_dim: required setting is missing",
    ),
    "changed weights": (
        lambda m, o: truncate(m / "denoiser" / "model.safetensors"),
        "denoiser/model.safetensors",
        "changed or truncated",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_exits_2_names_the_file_and_writes_nothing(
    scan, diffusion_checkpoint, other_autoencoder, tmp_path, case
):
    damage, where, message = DAMAGE[case]
    model = shutil.copytree(diffusion_checkpoint, tmp_path / "model")
    damage(model, other_autoencoder)
    before = file_hashes(scan[0].parent)
    out = tmp_path / "out"
    run = synthesize(scan, model, out)
    assert run.code == 2, run.err
    assert message in run.err and str(model / where) in run.err
    assert "Traceback" not in run.err
    assert not out.exists()
    assert file_hashes(scan[0].parent) == before


@pytest.fixture(scope="module")
def made(scan, diffusion_checkpoint, tmp_path_factory):
    """One case synthesized with the tiny checkpoint through the CLI."""
    out = tmp_path_factory.mktemp("made") / "synth"
    run = synthesize(scan, diffusion_checkpoint, out)
    assert run.code == 0, run.err
    return out


def first_image(folder: Path) -> np.ndarray:
    return np.asarray(nib.load(next((folder / "imagesTr").iterdir())).dataobj)


def test_records_carry_the_hash_of_every_checkpoint_file(made):
    record = json.loads((made / "manifest.jsonl").read_text().splitlines()[0])
    assert sorted(record["appearance"]["weights_sha256"]) == [
        "autoencoder/config.json",
        "autoencoder/model.safetensors",
        "denoiser/config.json",
        "denoiser/model.safetensors",
    ]


def test_replay_with_a_moved_checkpoint_is_exact(made, diffusion_checkpoint, tmp_path):
    moved = shutil.copytree(diffusion_checkpoint, tmp_path / "elsewhere" / "model")
    out = tmp_path / "replayed"
    run = cli(
        "replay", made / "manifest.jsonl", "--checkpoint", moved, "--out", out, "--device", "cpu"
    )
    assert run.code == 0, run.err
    assert np.array_equal(first_image(made), first_image(out))


def test_replay_with_a_checkpoint_of_other_files_is_refused(
    made, diffusion_checkpoint, other_autoencoder, tmp_path
):
    """Another autoencoder of the same config, the denoiser's pin rewritten to match: the folder
    loads, but the records were not made by it."""
    swapped = shutil.copytree(diffusion_checkpoint, tmp_path / "swapped")
    swap_autoencoder(swapped, other_autoencoder)
    pins = json.loads((other_autoencoder / "denoiser" / "config.json").read_text())["requires"]
    rehashed_edit(swapped / "denoiser", lambda m: m.update(requires=pins))
    out = tmp_path / "replayed"
    run = cli(
        "replay", made / "manifest.jsonl", "--checkpoint", swapped, "--out", out, "--device", "cpu"
    )
    assert run.code == 2, run.err
    assert "replay would not be exact" in run.err
    assert not (out / "imagesTr").exists() or not any((out / "imagesTr").iterdir())


def test_replay_with_a_damaged_checkpoint_is_refused(made, diffusion_checkpoint, tmp_path):
    damaged = shutil.copytree(diffusion_checkpoint, tmp_path / "damaged")
    text_edit(damaged / "denoiser" / "config.json", '"scale_factor": 1.0', '"scale_factor": 2.0')
    out = tmp_path / "replayed"
    run = cli(
        "replay", made / "manifest.jsonl", "--checkpoint", damaged, "--out", out, "--device", "cpu"
    )
    assert run.code == 2
    assert str(damaged / "denoiser" / "config.json") in run.err and "config_sha256" in run.err
