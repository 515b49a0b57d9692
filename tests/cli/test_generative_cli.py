"""The learned generator through the CLI: train-autoencoder -> train-diffusion -> synthesize
--generator diffusion -> replay, with tiny configs on phantoms (CPU)."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from cli_runner import cli
from tiny import TINY_AE, TINY_DENOISER

from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tumor_phantom_case):
    root = tmp_path_factory.mktemp("gen_cli")
    ct, seg = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    save_volume(ct, root / "healthy" / "ct.nii.gz")
    save_volume(seg, root / "healthy_label.nii.gz")
    ae_yaml = root / "ae.yaml"
    ae_yaml.write_text(
        yaml.safe_dump(
            {
                "data": {"images": [str(root / "healthy"), tumor_phantom_case["image"]]},
                "model": TINY_AE,
                "optim": {"max_steps": 6, "batch_size": 2, "adv_start": 3},
                "train": {"out_dir": str(root / "ae_run"), "device": "cpu"},
            }
        )
    )
    diff_yaml = root / "diffusion.yaml"
    diff_yaml.write_text(
        yaml.safe_dump(
            {
                "autoencoder": str(root / "ae_run" / "autoencoder"),
                "data": {
                    "cases": [tumor_phantom_case],
                    "organs": ["liver"],
                },
                "model": {**TINY_DENOISER, "num_train_timesteps": 20, "sample_steps": [2, 2]},
                "optim": {"max_steps": 4, "batch_size": 2},
                "train": {"out_dir": str(root / "diff_run"), "device": "cpu"},
            }
        )
    )
    return root, ct


@pytest.fixture(scope="module")
def trained(chain):
    """Both training commands run once through the CLI; later tests use their checkpoint."""
    root, _ = chain
    ae = cli(
        "train-autoencoder",
        "--config",
        root / "ae.yaml",
        "--no-progress",
        "--set",
        "optim.max_steps=5",
    )
    diffusion = cli("train-diffusion", "--config", root / "diffusion.yaml", "--no-progress")
    return root, ae, diffusion


@pytest.mark.slow
def test_train_autoencoder_then_diffusion(trained):
    root, ae, diffusion = trained
    assert ae.code == 0, ae.err
    assert "PSNR" in ae.out
    assert json.loads((root / "ae_run" / "summary.json").read_text())["steps"] == 5
    assert diffusion.code == 0, diffusion.err
    assert "--checkpoint" in diffusion.out
    assert (root / "diff_run" / "model" / "denoiser" / "config.json").is_file()


@pytest.mark.slow
def test_synthesize_with_the_checkpoint_and_replay_it(trained):
    root, _, diffusion = trained
    assert diffusion.code == 0, diffusion.err
    model = root / "diff_run" / "model"
    out = root / "synth"
    run = cli(
        "synthesize",
        "--image",
        root / "healthy" / "ct.nii.gz",
        "--label",
        root / "healthy_label.nii.gz",
        "--label-map",
        "phantom",
        "--organ",
        "liver,kidney",
        "--count",
        "1",
        "--generator",
        "diffusion",
        "--checkpoint",
        model,
        "--device",
        "cpu",
        "--out",
        out,
        "--no-progress",
    )
    assert run.code == 0, run.err
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["organ"] for r in records} == {"liver", "kidney"}
    assert all(r["generator"] == "diffusion" for r in records)
    assert all(r["appearance"]["checkpoint"] == str(model) for r in records)
    replayed = root / "replayed"
    run = cli(
        "replay", out / "manifest.jsonl", "--out", replayed, "--device", "cpu", "--no-progress"
    )
    assert run.code == 0, run.err
    image = lambda folder: np.asarray(nib.load(next((folder / "imagesTr").iterdir())).dataobj)
    assert np.array_equal(image(out), image(replayed))


@pytest.mark.parametrize(
    "extra, message",
    [
        ((), "needs a trained checkpoint"),
        (("--checkpoint", "nowhere"), "nowhere"),
    ],
)
def test_diffusion_without_a_usable_checkpoint_exits_2_and_writes_nothing(
    chain, tmp_path: Path, extra, message
):
    root, _ = chain
    out = tmp_path / "never"
    run = cli(
        "synthesize",
        "--image",
        root / "healthy" / "ct.nii.gz",
        "--label",
        root / "healthy_label.nii.gz",
        "--label-map",
        "phantom",
        "--generator",
        "diffusion",
        *extra,
        "--out",
        out,
        "--no-progress",
    )
    assert run.code == 2
    assert message in run.err
    assert not out.exists()


def test_a_checkpoint_for_the_heuristic_generator_is_refused(chain, tmp_path: Path):
    root, _ = chain
    run = cli(
        "synthesize",
        "--image",
        root / "healthy" / "ct.nii.gz",
        "--label",
        root / "healthy_label.nii.gz",
        "--label-map",
        "phantom",
        "--checkpoint",
        root,
        "--out",
        tmp_path / "x",
    )
    assert run.code == 2 and "only the adversarial and diffusion generators" in run.err


def test_train_diffusion_without_config_is_named():
    run = cli("train-diffusion")
    assert run.code == 2 and "--config" in run.err
