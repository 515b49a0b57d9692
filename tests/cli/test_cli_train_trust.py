"""train / train-autoencoder / train-diffusion through the entry point, as a careless user would
run them: bad settings are refused before anything is written (exit 2, naming the setting, no
out_dir, the YAML untouched); an out_dir that holds a previous run is never overwritten without
--resume; a patch or crop larger than the images is refused up front."""

import json
from pathlib import Path

import pytest
import yaml
from cli_runner import cli
from file_checks import file_hashes
from tiny import TINY_AE, TINY_DENOISER, segmentor_settings, write_phantom_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two healthy phantoms as an nnU-Net folder (96 x 80 x 48 voxels of 4 x 4 x 5 mm)."""
    return write_phantom_dataset(tmp_path_factory.mktemp("train_trust") / "Dataset001_P")


def train_settings(data: Path, out: Path) -> dict:
    settings = segmentor_settings(data, out, tumor_size="medium", tumors_per_case=1)
    settings["name"] = "trust"
    settings["optim"]["warmup_steps"] = 1
    settings["train"]["checkpoint_every"] = 1
    return settings


def ae_settings(data: Path, out: Path) -> dict:
    return {
        "data": {"images": [str(data)], "val_fraction": 0.5, "val_crops": 1},
        "model": TINY_AE,
        "optim": {"max_steps": 2, "batch_size": 1, "adv_start": 1, "warmup_steps": 1},
        "train": {"out_dir": str(out), "device": "cpu"},
    }


def diffusion_settings(autoencoder: Path, case: dict, out: Path) -> dict:
    return {
        "autoencoder": str(autoencoder),
        "data": {
            "cases": [case],
            "label_map": "tumorsynth",
            "organs": ["liver"],
            "val_crops": 1,
        },
        "model": TINY_DENOISER,
        "optim": {"max_steps": 2, "batch_size": 2, "warmup_steps": 1},
        "train": {"out_dir": str(out), "device": "cpu"},
    }


def settings_for(command: str, data: Path, out: Path, case: dict | None = None) -> dict:
    if command == "train":
        return train_settings(data, out)
    if command == "train-autoencoder":
        return ae_settings(data, out)
    return diffusion_settings(out.parent / "no_autoencoder_needed", case or {}, out)


def with_setting(settings: dict, dotted: str, value: object) -> dict:
    out = json.loads(json.dumps(settings))
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def write_yaml(path: Path, settings: dict) -> bytes:
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path.read_bytes()


def snapshot(folder: Path) -> dict[str, str]:
    """The run's files (TensorBoard's event files aside: its writer may still be flushing)."""
    return {
        name: digest
        for name, digest in file_hashes(folder).items()
        if not name.startswith("tensorboard/")
    }


def run_twice(command: str, config: Path, run: Path) -> tuple[dict[str, str], str]:
    """Run ``command`` (it must succeed), then again into the same out_dir: the second run must
    exit 2, naming the folder as a finished run, and leave it as it was. Returns the run's files
    and the refusal's stderr."""
    code, _, err = cli(command, "--config", config, "--no-progress")
    assert code == 0, err
    finished = snapshot(run)
    code, _, err = cli(command, "--config", config, "--no-progress")
    assert code == 2
    assert str(run) in err and "a finished training run (2 steps)" in err
    assert snapshot(run) == finished  # nothing replaced
    return finished, err


# --- bad settings: every training command, checked whole before anything is written -----------

# (dotted setting, value, what the message must name); the list is the matrix of careless edits
BAD_COMMON = [
    ("optim.max_steps", "ten", "optim.max_steps: expected an integer, found 'ten'"),
    ("optim.lr", "fast", "optim.lr: expected a number, found 'fast'"),
    ("optim.batch_size", True, "optim.batch_size: expected an integer, found True (bool)"),
    ("seed", 1.5, "seed: expected an integer, found 1.5"),
    ("colour", "red", "unknown setting(s) ['colour']"),
    ("optim.colour", 1, "optim: unknown setting(s) ['colour']"),
    ("optim.lr", -0.001, "optim.lr: expected a value > 0"),
    ("optim.batch_size", 0, "optim.batch_size: expected a value >= 1"),
    ("optim.max_steps", -5, "optim.max_steps: expected a value >= 1"),
    ("seed", -1, "seed: expected a value >= 0"),
    ("train", 5, "train: expected a mapping of settings, found 5"),
    ("train.max_minutes", "soon", "train.max_minutes: expected a number or null"),
]
BAD_SPECIFIC = {
    "train": [
        ("model.patch_size", 32, "model.patch_size: expected 3 integers, found 32"),
        ("model.patch_size", [32, 32], "model.patch_size: expected 3 integers, found 2 values"),
        ("data.healthy", 5, "data.healthy: expected a list"),
        ("data.healthy", [5], "data.healthy[0]: expected a string or a mapping, found 5"),
        ("data.spacing_mm", "fine", "data.spacing_mm: expected 3 numbers or null"),
        ("data.mode", "sometimes", "data.mode: expected one of 'real', 'synthetic', 'mixed'"),
        ("data.val_fraction", 1.5, "data.val_fraction: expected a value >= 0 and < 1"),
        ("model.backbone", "resnet", "model.backbone: expected one of 'unet'"),
        ("data.num_workers", 1.5, "data.num_workers: expected an integer, found 1.5"),
        ("data.cache", "yes", "data.cache: expected true or false, found 'yes'"),
    ],
    "train-autoencoder": [
        ("model.crop_size", "big", "model.crop_size: expected an integer, found 'big'"),
        ("model.spacing_mm", 4, "model.spacing_mm: expected 3 numbers, found 4"),
        ("data.images", 5, "data.images: expected a list"),
        ("data.images", "ct.nii.gz", "one entry is written as a list: [ct.nii.gz]"),
        ("optim.ema_decay", 1.5, "optim.ema_decay: expected a value >= 0 and < 1"),
    ],
    "train-diffusion": [
        ("model.sample_steps", 4, "model.sample_steps: expected 2 integers, found 4"),
        ("data.cases", 5, "data.cases: expected a list"),
        ("data.organs", "liver", "data.organs: expected a list"),
        ("data.jitter", "a bit", "data.jitter: expected a number"),
        ("autoencoder", 7, "autoencoder: expected a string, found 7"),
    ],
}
BAD = [
    (command, *case)
    for command in ("train", "train-autoencoder", "train-diffusion")
    for case in BAD_COMMON + BAD_SPECIFIC[command]
]


@pytest.mark.parametrize(
    "command,setting,value,message", BAD, ids=[f"{c}:{s}={v!r}" for c, s, v, _ in BAD]
)
def test_a_bad_setting_is_refused_before_anything_is_written(
    tmp_path, data, command, setting, value, message
):
    config = tmp_path / "config.yaml"
    out = tmp_path / "run"
    before = write_yaml(config, with_setting(settings_for(command, data, out), setting, value))
    code, _, err = cli(command, "--config", config, "--no-progress")
    assert code == 2, err
    assert message in err and str(config) in err, err
    assert "Traceback" not in err
    assert not out.exists()
    assert config.read_bytes() == before


# settings checked against the data, the label maps and the generator: still before out_dir exists
BAD_FOR_THE_DATA = [
    ("data.tumor_size", "huge", "data.tumor_size: expected one of 'tiny', 'small'"),
    ("data.healthy_label_map", "nope", "data.healthy_label_map: expected a preset"),
    (
        "data.healthy_label_map",
        {"liver": 1, "kidney": 1},
        "data.healthy_label_map: 'liver' and 'kidney' share label id 1",
    ),
    (
        "data.healthy",
        [{"path": "d", "label_map": {"liver": 0}}],
        "data.healthy[0].label_map: entry 'liver': expected a positive integer id",
    ),
    ("data.healthy_label_map", "gone.json", "data.healthy_label_map: gone.json: label-map JSON"),
    ("data.generator", "heuristc", "generator 'heuristc': unknown generator"),
    ("data.generator_options", {"colour": 1}, "data.generator_options: expected options of"),
    ("data.organ", "lver", "organ 'lver'"),
    ("data.val_cases", ["nope"], "data.val_cases: cases ['nope'] are not in the data"),
    ("data.healthy", [{"pth": "d"}], "found {'pth': 'd'} (unknown key(s) ['pth'])"),
    (
        "data.healthy",
        [{"image": "gone.nii.gz", "label": "gone_seg.nii.gz", "label_map": "phantom"}],
        "gone.nii.gz: training image not found",
    ),
]


@pytest.mark.parametrize(
    "setting,value,message", BAD_FOR_THE_DATA, ids=[s for s, _, _ in BAD_FOR_THE_DATA]
)
def test_settings_checked_against_the_data_leave_no_out_dir(
    tmp_path, data, setting, value, message
):
    config = tmp_path / "config.yaml"
    out = tmp_path / "run"
    before = write_yaml(config, with_setting(train_settings(data, out), setting, value))
    code, _, err = cli("train", "--config", config, "--no-progress")
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not out.exists()
    assert config.read_bytes() == before


def test_an_inline_label_map_trains_and_every_problem_is_named_at_once(tmp_path, data):
    """The MONAI transform takes ``{liver: 1, kidney: 5}``; so does a training config. Wrong
    settings of several kinds (a label map, the generator, a range) come in one message."""
    config = tmp_path / "config.yaml"
    out = tmp_path / "run"
    inline = {"liver": 1, "kidney": 5}
    write_yaml(config, with_setting(train_settings(data, out), "data.healthy_label_map", inline))
    code, _, err = cli("train", "--config", config, "--no-progress", "--set", "optim.max_steps=1")
    assert code == 0, err
    assert (
        json.loads((out / "train_config.json").read_text())["data"]["healthy_label_map"] == inline
    )

    code, _, err = cli(
        "train",
        "--config",
        config,
        "--set",
        "data.healthy_label_map={liver: 1, kidney: 1}",
        "--set",
        "data.generator=heuristc",
        "--set",
        "optim.lr=-1",
        "--set",
        f"train.out_dir={tmp_path / 'other'}",
    )
    assert code == 2
    assert "3 settings are wrong" in err and "Traceback" not in err
    assert "data.healthy_label_map: 'liver' and 'kidney' share label id 1" in err
    assert "data.generator: generator 'heuristc': unknown generator" in err
    assert "optim.lr: expected a value > 0" in err
    assert not (tmp_path / "other").exists()


MISSING_INPUTS = [
    ("train", {"data.healthy": ["gone_dir"]}, "data.healthy[0]: gone_dir: training dataset"),
    ("train-autoencoder", {"data.images": ["gone.nii.gz"]}, "data.images[0]: gone.nii.gz: CT"),
    (
        "train-diffusion",
        {"data.cases": [{"image": "gone.nii.gz", "label": "gone_seg.nii.gz"}]},
        "data.cases[0].image: gone.nii.gz: training image not found",
    ),
]


@pytest.mark.parametrize(
    "command,settings,message", MISSING_INPUTS, ids=[m[0] for m in MISSING_INPUTS]
)
def test_missing_scans_are_named_with_the_other_problems_before_anything_is_written(
    tmp_path, data, command, settings, message
):
    config = tmp_path / "config.yaml"
    out = tmp_path / "run"
    written = settings_for(command, data, out)
    for dotted, value in settings.items():
        written = with_setting(written, dotted, value)
    write_yaml(config, written)
    code, _, err = cli(command, "--config", config, "--set", "optim.lr=-1")
    assert code == 2, err
    assert message in err and "optim.lr: expected a value > 0" in err
    assert not out.exists()


def test_a_missing_autoencoder_folder_is_named_before_anything_is_read(tmp_path, data):
    config = tmp_path / "config.yaml"
    write_yaml(config, diffusion_settings(tmp_path / "no_ae", {"path": str(data)}, tmp_path / "o"))
    code, _, err = cli("train-diffusion", "--config", config)
    assert code == 2
    assert f"autoencoder: {tmp_path / 'no_ae'}: folder not found" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["train", "train-autoencoder", "train-diffusion"])
def test_set_overrides_are_checked_the_same_way(tmp_path, data, command):
    config = tmp_path / "config.yaml"
    out = tmp_path / "run"
    write_yaml(config, settings_for(command, data, out))
    code, _, err = cli(
        command, "--config", config, "--set", "optim.max_steps=ten", "--set", "optim.lr=fast"
    )
    assert code == 2
    assert "2 settings are wrong" in err
    assert "optim.max_steps: expected an integer, found 'ten'" in err
    assert "optim.lr: expected a number, found 'fast'" in err
    assert not out.exists()


@pytest.mark.slow
def test_an_integral_float_seed_is_that_integer(tmp_path, data):
    """``seed: 2.0`` is exactly 2 (nothing is truncated); 1.5 is refused (above)."""
    config = tmp_path / "config.yaml"
    write_yaml(config, with_setting(train_settings(data, tmp_path / "run"), "seed", 2.0))
    code, _, err = cli("train", "--config", config, "--no-progress", "--set", "optim.max_steps=1")
    assert code == 0, err
    stored = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert stored["seed"] == 2 and isinstance(stored["seed"], int)


# --- a patch or crop larger than the images --------------------------------------------------


def test_a_patch_larger_than_every_image_is_refused_naming_case_sizes_and_fix(tmp_path, data):
    config = tmp_path / "config.yaml"
    settings = with_setting(train_settings(data, tmp_path / "run"), "model.patch_size", [128] * 3)
    write_yaml(config, settings)
    code, _, err = cli("train", "--config", config, "--no-progress")
    assert code == 2, err
    # the phantom is 96 x 80 x 48 voxels of 4 x 4 x 5 mm: 96 x 80 x 60 voxels at 4 mm
    assert "model.patch_size" in err and "128 x 128 x 128" in err
    assert "healthy:ph0: 96 x 80 x 60 voxels" in err and "4 x 4 x 4 mm" in err
    assert "at most 96 x 80 x 60" in err
    assert not (tmp_path / "run").exists()


def test_an_autoencoder_crop_larger_than_every_scan_is_refused(tmp_path, data):
    config = tmp_path / "config.yaml"
    settings = with_setting(ae_settings(data, tmp_path / "run"), "model.crop_size", 128)
    write_yaml(config, settings)
    code, _, err = cli("train-autoencoder", "--config", config, "--no-progress")
    assert code == 2, err
    assert "model.crop_size" in err and "512 x 512 x 512 mm" in err
    assert "ph0_0000: 384 x 320 x 240 mm" in err and "at most 60 voxels" in err
    assert not (tmp_path / "run").exists()


# --- a previous run is never overwritten ------------------------------------------------------


@pytest.mark.slow
def test_train_refuses_a_finished_run_and_resumes_it_on_request(tmp_path, data):
    config = tmp_path / "config.yaml"
    run = tmp_path / "run"
    write_yaml(config, train_settings(data, run))
    finished, err = run_twice("train", config, run)
    assert "checkpoints/last/model.safetensors" in finished
    assert "checkpoints" in err and "--resume" in err and "train.out_dir" in err

    # a resume with other settings would mix two runs
    code, _, err = cli(
        "train", "--config", config, "--resume", "--set", "data.tumor_size=small", "--no-progress"
    )
    assert code == 2 and "data.tumor_size: 'medium' -> 'small'" in err, err
    assert snapshot(run) == finished

    code, out, err = cli(
        "train", "--config", config, "--resume", "--set", "optim.max_steps=3", "--no-progress"
    )
    assert code == 0, err
    assert "trained 3 steps" in out
    steps = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["2", "3"]  # the first run's last row, then step 3: continued, not restarted


def test_train_refuses_an_unfinished_run_too(tmp_path, data):
    run = tmp_path / "run"
    (run / "checkpoints" / "last").mkdir(parents=True)
    (run / "metrics.csv").write_text("step,loss\n1,0.5\n")
    config = tmp_path / "config.yaml"
    write_yaml(config, train_settings(data, run))
    code, _, err = cli("train", "--config", config, "--no-progress")
    assert code == 2
    assert "an unfinished training run" in err and "metrics.csv" in err
    assert (run / "metrics.csv").read_text() == "step,loss\n1,0.5\n"
    assert not (run / "train_config.json").exists()


@pytest.mark.slow
def test_train_into_a_folder_of_other_files_is_allowed(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    config = tmp_path / "config.yaml"
    write_yaml(config, train_settings(data, run))
    code, _, err = cli("train", "--config", config, "--no-progress", "--set", "optim.max_steps=1")
    assert code == 0, err
    assert (run / "notes.txt").read_text() == "mine"


def test_generator_trainings_refuse_a_previous_run(tmp_path, data, tumor_phantom_case):
    """A real finished autoencoder run is refused; so is a denoiser run folder (refused before
    the autoencoder or any data is read). The fix names --resume and another out_dir."""
    ae_config = tmp_path / "ae.yaml"
    ae_run = tmp_path / "ae_run"
    write_yaml(ae_config, ae_settings(data, ae_run))
    finished, err = run_twice("train-autoencoder", ae_config, ae_run)
    assert "autoencoder/model.safetensors" in finished
    assert "autoencoder" in err and "train.out_dir=NEW_DIR" in err and "pass --resume" in err

    diff_run = tmp_path / "diff_run"
    (diff_run / "model" / "denoiser").mkdir(parents=True)
    (diff_run / "model" / "denoiser" / "config.json").write_text("{}")
    (diff_run / "summary.json").write_text('{"steps": 40}')
    diff_config = tmp_path / "diffusion.yaml"
    write_yaml(
        diff_config, diffusion_settings(ae_run / "autoencoder", tumor_phantom_case, diff_run)
    )
    code, _, err = cli("train-diffusion", "--config", diff_config, "--no-progress")
    assert code == 2
    assert str(diff_run) in err and "a finished training run (40 steps)" in err
    assert "model" in err and "summary.json" in err and "train.out_dir=NEW_DIR" in err
    assert (diff_run / "summary.json").read_text() == '{"steps": 40}'
    assert sorted(p.name for p in diff_run.iterdir()) == ["model", "summary.json"]
