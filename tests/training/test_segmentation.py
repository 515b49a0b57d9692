"""Training smoke tests on CPU: the loss goes down, checkpoints round-trip, training resumes,
prediction lands on the input grid."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from tiny import tiny_config

from tumorsynth.training.config import TrainConfig
from tumorsynth.training.data import split_cases
from tumorsynth.training.segmentation import train_segmentation


def rows(out):
    with open(out / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_training_lowers_the_loss_and_saves_checkpoints(phantom_dataset, tmp_path):
    config = TrainConfig.from_dict(
        tiny_config(phantom_dataset, tmp_path / "run", tumor_size="large", tumors_per_case=1)
        | {"optim": {"max_steps": 30, "batch_size": 2, "warmup_steps": 2, "lr": 3e-3}}
    )
    result = train_segmentation(config, progress=False)
    assert result.steps == 30
    losses = [float(r["loss"]) for r in rows(tmp_path / "run") if r["loss"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    for name in ("best", "last"):
        assert (tmp_path / "run" / "checkpoints" / name / "model.safetensors").is_file()
    stored = json.loads((tmp_path / "run" / "checkpoints" / "last" / "config.json").read_text())
    assert stored["config"]["spacing_mm"] == [4.0, 4.0, 4.0]
    assert stored["config"]["classes"]["liver_tumor"] == 2
    assert any(r["val_tumor_dsc"] for r in rows(tmp_path / "run"))


@pytest.mark.slow
def test_resume_continues_from_the_last_step(phantom_dataset, tmp_path):
    data = tiny_config(phantom_dataset, tmp_path / "run")
    first = TrainConfig.from_dict(data | {"optim": {**data["optim"], "max_steps": 4}})
    train_segmentation(first, progress=False)
    longer = TrainConfig.from_dict(data | {"optim": {**data["optim"], "max_steps": 6}})
    result = train_segmentation(longer, resume=True, progress=False)
    steps = [int(r["step"]) for r in rows(tmp_path / "run") if r["loss"]]
    assert result.steps == 6
    assert steps == [1, 2, 3, 4, 5, 6]  # resumed at 5, not restarted


def test_validation_split_is_deterministic_and_disjoint(phantom_dataset, tmp_path):
    config = TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path / "run"))
    train_a, val_a = split_cases(config)
    train_b, val_b = split_cases(config)
    assert [c.case_id for c in val_a] == [c.case_id for c in val_b]
    assert len(val_a) == 1 and len(train_a) == 2
    assert not {c.case_id for c in train_a} & {c.case_id for c in val_a}


@pytest.mark.slow
def test_prediction_lands_on_the_input_grid(phantom_dataset, tmp_path):
    from tumorsynth.pipelines.predict import predict_files

    config = TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path / "run"))
    train_segmentation(config, progress=False)
    written = predict_files(
        tmp_path / "run" / "checkpoints" / "last",
        phantom_dataset / "imagesTr",
        tmp_path / "pred",
        progress=False,
    )
    assert [p.name for p, _ in written] == ["ph0.nii.gz", "ph1.nii.gz", "ph2.nii.gz"]
    pred = nib.load(str(written[0][0]))
    image = nib.load(str(phantom_dataset / "imagesTr" / "ph0_0000.nii.gz"))
    assert pred.shape == image.shape
    assert np.allclose(pred.affine, image.affine)
    assert set(np.unique(np.asanyarray(pred.dataobj))) <= {0, 1, 2}


def test_real_mode_needs_real_data(phantom_dataset, tmp_path):
    from tumorsynth.errors import InputError

    with pytest.raises(InputError, match="real"):
        TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path) | {"data": {"mode": "real"}})


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(phantom_dataset, tmp_path):
    """Two processes (gloo) train one model; only rank 0 writes checkpoints and reports."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    config = tiny_config(phantom_dataset, tmp_path / "run")
    config["optim"]["max_steps"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "tumorsynth.cli.main",
            "train",
            "--config",
            str(tmp_path / "c.yaml"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained 2 steps") == 1
    assert (tmp_path / "run" / "checkpoints" / "last" / "model.safetensors").is_file()


@pytest.mark.slow
def test_interrupt_saves_the_last_step_for_resume(phantom_dataset, tmp_path, monkeypatch):
    import tumorsynth.training.segmentation as seg

    config = TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path / "run"))
    real_loss = seg._loss
    calls = {"n": 0}

    def interrupt_at_third(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(seg, "_loss", interrupt_at_third)
    with pytest.raises(KeyboardInterrupt):
        train_segmentation(config, progress=False)
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "config.json").read_text())
    assert state["config"]["step"] == 2
    monkeypatch.setattr(seg, "_loss", real_loss)
    result = train_segmentation(config, resume=True, progress=False)
    assert result.steps == 8


def test_cases_can_be_listed_file_by_file(phantom_dataset, tmp_path):
    listed = [
        {
            "image": str(phantom_dataset / "imagesTr" / f"ph{i}_0000.nii.gz"),
            "label": str(phantom_dataset / "labelsTr" / f"ph{i}.nii.gz"),
            "label_map": "phantom",
            "case_id": f"c{i}",
        }
        for i in range(3)
    ]
    config = TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path / "run", healthy=listed))
    train, val = split_cases(config)
    assert sorted(c.case_id for c in train + val) == ["healthy:c0", "healthy:c1", "healthy:c2"]


def test_the_organ_analysis_can_be_kept_on_disk_for_other_workers(phantom_dataset, tmp_path):
    from tumorsynth.training.data import build_datasets

    cache = tmp_path / "analyses"
    settings = tiny_config(phantom_dataset, tmp_path / "run", analysis_cache_dir=str(cache))
    config = TrainConfig.from_dict(settings)
    train, val = split_cases(config)
    dataset, _, _ = build_datasets(config, train, val, (4.0, 4.0, 4.0))
    for index in range(len(train)):
        dataset[index]
    assert 1 <= len(list(cache.glob("organ_*.npz"))) <= len(train)
