"""train / predict / export-nnunet / experiment through the real entry point."""

import yaml
from cli_runner import cli

from tumorsynth.io.nifti import save_volume
from tumorsynth.io.phantom import make_phantom


def make_dataset(root):
    for i in range(2):
        ct, seg = make_phantom(i, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
        save_volume(ct, root / "imagesTr" / f"ph{i}_0000.nii.gz")
        save_volume(seg, root / "labelsTr" / f"ph{i}.nii.gz")
    return root


def test_train_then_predict(tmp_path):
    data = make_dataset(tmp_path / "Dataset001_P")
    config = {
        "name": "cli",
        "data": {
            "mode": "synthetic",
            "healthy": [str(data)],
            "healthy_label_map": "phantom",
            "val_fraction": 0.0,
            "spacing_mm": [4, 4, 4],
            "num_workers": 0,
        },
        "model": {"patch_size": [32, 32, 32], "channels": [8, 16, 32]},
        "optim": {"max_steps": 50, "batch_size": 2},
        "train": {"out_dir": str(tmp_path / "run")},
    }
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
    code, _, err = cli(
        "predict", "--checkpoint", tmp_path / "none", "--input", tmp_path, "--out", tmp_path / "o"
    )
    assert code == 2 and "config.json" in err
    assert not (tmp_path / "o").exists()


def test_export_nnunet_refuses_a_bad_name_and_writes_a_good_one(tmp_path):
    data = make_dataset(tmp_path / "healthy")
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
