"""The learned generator's trainings survive an interrupt and scale out: ``--resume`` continues
the autoencoder and the denoiser exactly where they stopped (the same weights as a run that was
never interrupted), refuses a run made with other settings, and both run under torchrun with DDP
(gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tiny import ae_settings, diffusion_settings

from tumorsynth.errors import InputError
from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.training.autoencoder import train_autoencoder
from tumorsynth.training.diffusion import train_diffusion
from tumorsynth.training.generative_config import AutoencoderTrainConfig, DiffusionTrainConfig
from tumorsynth.training.resume import TRAIN_STATE, last_checkpoint


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("resume_scans")
    out = []
    for i in range(2):
        ct, _ = make_phantom(i, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
        out.append(save_volume(ct, root / f"ct{i}.nii.gz"))
    return out


def ae_config(images, out, steps):
    settings = ae_settings(images, out, steps=steps)
    settings["optim"]["adv_start"] = 2  # the discriminator and its optimizer are resumed too
    settings["train"]["val_every"] = 3
    return AutoencoderTrainConfig.from_dict(settings)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.rglob("*.safetensors"))
    assert files, f"no weights in {folder}"
    out: dict[str, torch.Tensor] = {}
    for path in files:
        out.update({f"{path.relative_to(folder)}:{k}": v for k, v in load_file(path).items()})
    return out


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def interrupted(module, train, config, after_steps: int) -> None:
    """Run ``train(config)`` and press Ctrl-C after ``after_steps`` steps (the loop asks
    ``out_of_time`` once before each step)."""
    calls = {"n": 0}
    real = module.out_of_time

    def ctrl_c(*args):
        calls["n"] += 1
        if calls["n"] > after_steps:
            raise KeyboardInterrupt
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "out_of_time", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False)


@pytest.fixture(scope="module")
def autoencoder_runs(images, tmp_path_factory):
    """The same 5-step training, straight through, and interrupted after 2 steps then resumed."""
    import tumorsynth.training.autoencoder as module

    root = tmp_path_factory.mktemp("ae_resume")
    straight = train_autoencoder(ae_config(images, root / "straight", 5), progress=False)
    interrupted(module, train_autoencoder, ae_config(images, root / "split", 5), 2)
    second = train_autoencoder(ae_config(images, root / "split", 5), resume=True, progress=False)
    return straight, second


def test_a_resumed_autoencoder_ends_where_an_uninterrupted_one_does(autoencoder_runs):
    straight, second = autoencoder_runs
    assert (straight.steps, second.steps) == (5, 5)
    assert_same_weights(straight.out_dir / "autoencoder", second.out_dir / "autoencoder")
    summary = json.loads((second.out_dir / "summary.json").read_text())
    assert summary["resumed_from"] == 2 and summary["steps_this_run"] == 3
    rows = (second.out_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows.count(rows[0]) == 1  # one header, appended


def test_a_resumed_denoiser_ends_where_an_uninterrupted_one_does(
    autoencoder_runs, tumor_phantom_case, tmp_path
):
    import tumorsynth.training.diffusion as module

    autoencoder = autoencoder_runs[0].out_dir / "autoencoder"

    def config(out, steps):
        settings = diffusion_settings(autoencoder, tumor_phantom_case, out, steps=steps)
        settings["train"]["val_every"] = 2
        return DiffusionTrainConfig.from_dict(settings)

    straight = train_diffusion(config(tmp_path / "straight", 4), progress=False)
    interrupted(module, train_diffusion, config(tmp_path / "split", 4), 3)
    second = train_diffusion(config(tmp_path / "split", 4), resume=True, progress=False)
    assert second.steps == 4
    assert_same_weights(straight.model_dir, second.model_dir)
    assert second.first_loss == straight.first_loss
    state = torch.load(last_checkpoint(second.out_dir) / TRAIN_STATE, weights_only=True)
    assert state["step"] == 4 and "ema" in state and len(state["rng"]) == 1


def test_resume_refuses_other_settings_and_a_new_run_refuses_the_folder(autoencoder_runs, images):
    out = autoencoder_runs[1].out_dir
    changed = ae_config(images, out, 6)
    changed = AutoencoderTrainConfig.from_dict(
        {**changed.to_dict(), "optim": {**changed.to_dict()["optim"], "lr": 1e-2}}
    )
    with pytest.raises(InputError, match=r"other settings \(optim.lr"):
        train_autoencoder(changed, resume=True, progress=False)
    with pytest.raises(InputError, match="--resume"):
        train_autoencoder(ae_config(images, out, 6), progress=False)


def test_resume_of_an_empty_folder_starts_at_step_0(images, tmp_path):
    result = train_autoencoder(ae_config(images, tmp_path / "new", 1), resume=True, progress=False)
    assert result.steps == 1
    assert (last_checkpoint(result.out_dir) / TRAIN_STATE).is_file()


def torchrun(*argv: object, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    runner = Path(sys.executable).parent / "torchrun"
    command = str(runner) if runner.exists() else shutil.which("torchrun")
    assert command, "torchrun is not installed"
    return subprocess.run(
        [command, "--standalone", "--nproc_per_node", "2", "-m", "tumorsynth.cli.main"]
        + [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_both_stages_train_under_torchrun_ddp_on_cpu(
    images, autoencoder_runs, tumor_phantom_case, tmp_path
):
    """Two gloo processes train one autoencoder, then one denoiser, and resume it; only rank 0
    writes (one summary line, one metrics header), the states hold both ranks' random states."""
    ae = ae_config(images, tmp_path / "ae", 2).to_dict()
    (tmp_path / "ae.yaml").write_text(yaml.safe_dump(ae))
    done = torchrun("train-autoencoder", "--config", tmp_path / "ae.yaml", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 2 steps") == 1
    state = torch.load(last_checkpoint(tmp_path / "ae") / TRAIN_STATE, weights_only=True)
    assert len(state["rng"]) == 2 and state["rng"][0] != state["rng"][1]
    assert json.loads((tmp_path / "ae" / "summary.json").read_text())["processes"] == 2

    diffusion = diffusion_settings(
        tmp_path / "ae" / "autoencoder", tumor_phantom_case, tmp_path / "dm", steps=2
    )
    (tmp_path / "dm.yaml").write_text(yaml.safe_dump(diffusion))
    done = torchrun("train-diffusion", "--config", tmp_path / "dm.yaml", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "dm" / "model").is_dir()
    done = torchrun(
        "train-diffusion", "--config", tmp_path / "dm.yaml", "--resume", "--no-progress",
        "--set", "optim.max_steps=3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "dm" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["resumed_from"] == 2
    header = (tmp_path / "dm" / "metrics.csv").read_text().splitlines()[0]
    assert (tmp_path / "dm" / "metrics.csv").read_text().count(header) == 1


@pytest.mark.slow
def test_sigterm_keeps_the_state_and_resume_continues(images, tmp_path):
    """A scheduler's SIGTERM stops a training as Ctrl-C does: exit 130, the state of the last
    step saved, and ``--resume`` goes on from there."""
    import signal
    import time

    out = tmp_path / "ae"
    config = ae_config(images, out, 100000).to_dict()
    config["train"]["val_every"] = 100000
    (tmp_path / "ae.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "tumorsynth.cli.main", "train-autoencoder", "--config",
               str(tmp_path / "ae.yaml"), "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "metrics.csv").is_file():
        time.sleep(0.2)
    time.sleep(3.0)  # some steps
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted" in err
    state = torch.load(last_checkpoint(out) / TRAIN_STATE, weights_only=True)
    assert state["step"] > 0
    assert (out / "autoencoder" / "model.safetensors").is_file()
    resumed = train_autoencoder(
        AutoencoderTrainConfig.from_dict({**config, "optim": {**config["optim"],
                                          "max_steps": state["step"] + 2}}),
        resume=True,
        progress=False,
    )  # fmt: skip
    assert resumed.steps == state["step"] + 2
