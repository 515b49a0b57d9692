"""train / predict / export-nnunet / experiment through the real entry point."""

import pytest
import yaml
from cli_runner import cli
from tiny import segmentor_settings, write_phantom_dataset


@pytest.mark.slow
def test_train_then_predict(tmp_path):
    data = write_phantom_dataset(tmp_path / "Dataset001_P")
    config = segmentor_settings(data, tmp_path / "run", max_steps=50)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code, out, err = cli(
        "train", "--config", tmp_path / "c.yaml", "--set", "optim.max_steps=2", "--no-progress"
    )
    assert code == 0, err
    assert "trained 2 steps" in out
    code, out, err = cli(
        "predict",
        "--checkpoint",
        tmp_path / "run" / "checkpoints" / "last",
        "--input",
        data / "imagesTr",
        "--out",
        tmp_path / "pred",
        "--device",
        "cpu",
        "--no-progress",
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["ph0.nii.gz", "ph1.nii.gz"]


def test_bad_training_config_exits_2_naming_the_setting(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {mode: synthetic, healthy: [x], colour: 1}\n")
    code, _, err = cli("train", "--config", tmp_path / "c.yaml")
    assert code == 2 and "colour" in err


def test_predict_with_a_missing_checkpoint_exits_2(tmp_path):
    images = write_phantom_dataset(tmp_path / "data", cases=1) / "imagesTr"  # inputs are fine
    code, _, err = cli(
        "predict", "--checkpoint", tmp_path / "none", "--input", images, "--out", tmp_path / "o"
    )
    assert code == 2 and "config.json" in err
    assert not (tmp_path / "o").exists()


def test_export_nnunet_refuses_a_bad_name_and_writes_a_good_one(tmp_path):
    data = write_phantom_dataset(tmp_path / "healthy")
    code, _, err = cli(
        "export-nnunet",
        "--healthy",
        data,
        "--label-map",
        "phantom",
        "--out",
        tmp_path / "out",
        "--no-progress",
    )
    assert code == 2 and "DatasetNNN_Name" in err
    code, out, err = cli(
        "export-nnunet",
        "--healthy",
        data,
        "--label-map",
        "phantom",
        "--count",
        1,
        "--size",
        "small",
        "--out",
        tmp_path / "Dataset102_Syn",
        "--no-progress",
    )
    assert code == 0, err
    assert (tmp_path / "Dataset102_Syn" / "dataset.json").is_file()
