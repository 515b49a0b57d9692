"""``train-adversarial`` end to end on phantoms (CPU, tiny networks): it starts from nothing, writes
a checkpoint the ``adversarial`` generator synthesizes with, resumes to the same weights, skips
healthy scans without the organ, and refuses a judge of another organ or spacing before output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from test_generative_resume import assert_same_weights, interrupted
from tiny import constant_segmentor, synthesize_phantom

from tumorsynth.errors import InputError
from tumorsynth.generators.adversarial import AdversarialGenerator
from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.training.adversarial import train_adversarial
from tumorsynth.training.adversarial_config import AdversarialTrainConfig


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return constant_segmentor(tmp_path_factory.mktemp("judge") / "seg", 5.0)


def settings(judge, phantom_dataset, tumor_phantom_case, out, steps=4, **data):
    return {
        "name": "adv_test",
        "segmentor": str(judge),
        "data": {
            "organ": "liver",
            "healthy": [str(phantom_dataset)],
            "healthy_label_map": "phantom",
            "real": [tumor_phantom_case],
            "val_crops": 2,
            **data,
        },
        "model": {
            "crop_size": 16,
            "spacing_mm": [4.0, 4.0, 4.0],
            "channels": [4, 8],
            "max_change_hu": 80.0,
            "smooth_mm": 4.0,
        },
        "optim": {"batch_size": 2, "max_steps": steps, "warmup_steps": 1},
        "train": {"out_dir": str(out), "val_every": 2, "log_every": 1, "device": "cpu"},
    }


def config(*args, **kwargs) -> AdversarialTrainConfig:
    return AdversarialTrainConfig.from_dict(settings(*args, **kwargs))


@pytest.fixture(scope="module")
def runs(judge, phantom_dataset, tumor_phantom_case, tmp_path_factory):
    import tumorsynth.training.adversarial as module

    root = tmp_path_factory.mktemp("adv")
    args = (judge, phantom_dataset, tumor_phantom_case)
    straight = train_adversarial(config(*args, root / "straight"), progress=False)
    interrupted(module, train_adversarial, config(*args, root / "split"), 2)
    second = train_adversarial(config(*args, root / "split"), resume=True, progress=False)
    return straight, second


def test_it_trains_from_nothing_and_writes_what_a_user_looks_at(runs):
    straight, _ = runs
    assert straight.steps == 4 and 0.0 <= straight.val_seg_tumor <= 1.0
    out = straight.out_dir
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["real_tumors"] == 2
    assert len(summary["healthy_scans"]) == 3
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    assert header.startswith("step,loss_g,seg,adv,loss_d") and len(rows) >= 4
    assert (out / "samples.png").stat().st_size > 1000


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(runs):
    straight, second = runs
    assert second.steps == 4
    assert_same_weights(straight.model_dir, second.model_dir)
    assert json.loads((second.out_dir / "summary.json").read_text())["resumed_from"] == 2


def test_the_checkpoint_synthesizes_the_same_tumors_for_a_seed(runs, phantom):
    gen = AdversarialGenerator(runs[0].model_dir, device="cpu")
    out = synthesize_phantom(phantom, gen, count=2, size="small", rng=1)
    assert len(out.records) == 2 and (out.label == 2).any()
    again = synthesize_phantom(phantom, gen, count=2, size="small", rng=1)
    assert np.array_equal(out.image, again.image)


def test_a_healthy_scan_without_the_organ_is_skipped(
    judge, phantom_dataset, tumor_phantom_case, tmp_path
):
    ct, seg = make_phantom(5, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    no_liver = np.where(seg.array == 1, 0, seg.array).astype(seg.array.dtype)
    image = save_volume(ct, tmp_path / "nl_ct.nii.gz")
    label = save_volume(seg, tmp_path / "nl_seg.nii.gz", array=no_liver)
    healthy = [str(phantom_dataset), {"image": str(image), "label": str(label)}]
    cfg = config(judge, phantom_dataset, tumor_phantom_case, tmp_path / "o", 1, healthy=healthy)
    with pytest.warns(UserWarning, match="without room for liver tumors"):
        result = train_adversarial(cfg, progress=False)
    assert result.steps == 1
    only = [{"image": str(image), "label": str(label)}]
    cfg = config(judge, phantom_dataset, tumor_phantom_case, tmp_path / "p", 1, healthy=only)
    with pytest.raises(InputError, match="found none usable"), pytest.warns(UserWarning):
        train_adversarial(cfg, progress=False)
    assert not (tmp_path / "p").exists()


def test_a_judge_of_another_organ_or_spacing_is_refused_before_output(
    phantom_dataset, tumor_phantom_case, tmp_path
):
    kidney = constant_segmentor(tmp_path / "kidney", 5.0, organ="kidney")
    with pytest.raises(InputError, match="segments kidney tumors"):
        train_adversarial(config(kidney, phantom_dataset, tumor_phantom_case, tmp_path / "o"))
    liver = constant_segmentor(tmp_path / "liver", 5.0)
    coarse = settings(liver, phantom_dataset, tumor_phantom_case, tmp_path / "o")
    coarse["model"]["spacing_mm"] = [2.0, 2.0, 2.0]
    with pytest.raises(InputError, match="spacing_mm"):
        train_adversarial(AdversarialTrainConfig.from_dict(coarse))
    assert not (tmp_path / "o").exists()


def test_the_cli_trains_from_a_yaml(judge, phantom_dataset, tumor_phantom_case, tmp_path, capsys):
    from tumorsynth.cli.main import main

    path = tmp_path / "adv.yaml"
    path.write_text(
        yaml.safe_dump(settings(judge, phantom_dataset, tumor_phantom_case, tmp_path / "r", 2))
    )
    assert main(["train-adversarial", "--config", str(path), "--no-progress"]) == 0
    assert "--generator adversarial" in capsys.readouterr().out
    assert (tmp_path / "r" / "model").is_dir()


def test_scans_without_room_for_the_size_stop_with_the_reason(monkeypatch):
    """A scan set that can hold no tumor of the asked size stops after a bounded number of draws
    instead of drawing forever."""
    from tumorsynth.errors import PlacementError
    from tumorsynth.models.adversarial import AdversarialConfig
    from tumorsynth.organs import get_profile
    from tumorsynth.training.adversarial_data import HealthyCrops, HealthyScan

    def no_room(*args, **kwargs):
        raise PlacementError("scan", "no room")

    crops = HealthyCrops(
        [HealthyScan("s", None, None, (1.0, 1.0, 1.0), ((0, 1), (1, 1), (2, 1)), None)],  # type: ignore[arg-type]
        AdversarialConfig(),
        get_profile("liver"),
        "large",
        np.random.default_rng(0),
    )
    monkeypatch.setattr(crops.shapes, "draw", no_room)
    with pytest.raises(InputError, match="no room for large liver tumors in 200 draws"):
        crops.crops(1)


def test_unlabeled_scans_may_come_as_a_case_list(
    judge, phantom_dataset, tumor_phantom_case, tmp_path
):
    from tumorsynth.io.datasets import discover_cases

    listed = tmp_path / "healthy.csv"
    listed.write_text("".join(f"{c.image},{c.label}\n" for c in discover_cases(phantom_dataset)))
    cfg = config(
        judge, phantom_dataset, tumor_phantom_case, tmp_path / "o", 1, healthy=[str(listed)]
    )
    result = train_adversarial(cfg, progress=False)
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert result.steps == 1 and len(summary["healthy_scans"]) == 3
