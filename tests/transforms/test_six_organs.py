"""On-the-fly synthesis and training with the six organs: RandTumorSynthd with several organs at
once (colon, esophagus, uterus among them), the network's classes following the organs of the
training config, and a short training run on phantoms with liver, colon and uterus tumors."""

import csv
import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from tiny import tiny_config

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import OUTPUT_LABELS
from tumorsynth.phantom import make_phantom
from tumorsynth.training.config import TrainConfig
from tumorsynth.training.data import RelabelToOutputd, ToClassesd
from tumorsynth.transforms import RandTumorSynthd, TumorSynthd

#: Phantom label ids of the new organs and their output ids.
PHANTOM = {"colon": 10, "esophagus": 11, "uterus": 12}
OUTPUT = {name: OUTPUT_LABELS.id_of(name) for name in ("liver", *PHANTOM)}
TUMOR = {name: OUTPUT_LABELS.id_of(f"{name}_tumor") for name in ("liver", *PHANTOM)}


@pytest.fixture(scope="module")
def phantom4():
    """The phantom at 4 x 4 x 5 mm (it holds an esophagus at this field of view)."""
    return make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))


def sample(phantom):
    ct, seg = phantom
    return {
        "image": ct.array[None].astype(np.float32),
        "label": seg.array[None],
        "image_meta_dict": {"affine": ct.affine},
    }


def test_one_transform_puts_tumors_into_each_of_several_organs(phantom4):
    """organ=[liver, colon, uterus]: each call one organ, its tumors where that organ was
    (a colon tumor in the colon's wall and former lumen, plus its outgrowth), the label always
    in the output convention with every organ of the map."""
    _, seg = phantom4
    transform = RandTumorSynthd(
        organ=["liver", "colon", "uterus"],
        count=1,
        size="small",
        label_map="phantom",
        records_key="tumors",
    ).set_random_state(0)
    seen = set()
    colon_near = ndimage.binary_dilation(seg.array == PHANTOM["colon"], iterations=2)
    for _ in range(8):
        out = transform(sample(phantom4))
        label = np.asarray(out["label"])[0]
        assert set(np.unique(label)) <= set(range(13))
        for name in ("colon", "esophagus", "uterus"):
            assert (label == OUTPUT[name]).any() or (label == TUMOR[name]).any()
        (record,) = out["tumors"]
        organ = record["organ"]
        seen.add(organ)
        tumor = label == TUMOR[organ]
        assert tumor.sum() == record["n_voxels"] > 0
        assert record["tumor_label"] == TUMOR[organ]
        others = [TUMOR[o] for o in ("liver", "colon", "uterus") if o != organ]
        assert not np.isin(label, others).any()  # one organ per call
        if organ == "colon":
            assert record["shape"]["wall"] is not None
            assert colon_near[tumor].all()
        else:
            source = {"liver": 1, "uterus": PHANTOM["uterus"]}[organ]
            assert (seg.array[tumor] == source).mean() > 0.9
    assert seen == {"liver", "colon", "uterus"}


def test_training_crops_hold_wall_tumors_and_uterus_tumors(phantom4):
    """Crop first (as training does): tumor crops of the colon and the uterus hold a tumor of
    that organ, centred in the crop, and every crop has the crop's size."""
    transform = RandTumorSynthd(
        organ=["colon", "uterus"],
        count=1,
        size="small",
        label_map="phantom",
        crop_size=(32, 32, 24),
        crop_ratios=(0.0, 0.0, 1.0),
        num_samples=2,
        records_key="tumors",
    ).set_random_state(3)
    found = set()
    for _ in range(4):
        for crop in transform(sample(phantom4)):
            label = np.asarray(crop["label"])[0]
            assert label.shape == (32, 32, 24)
            for record in crop["tumors"]:
                found.add(record["organ"])
                assert (label == record["tumor_label"]).any()
    assert found == {"colon", "uterus"}


def test_the_validation_twin_takes_several_organs(phantom4):
    twin = TumorSynthd(
        organ=("esophagus", "uterus"), count=1, size="tiny", label_map="phantom", seed=1
    )
    data = {**sample(phantom4), "case_id": "ph0"}
    a, b = twin(data), twin(data)
    assert np.array_equal(np.asarray(a["label"]), np.asarray(b["label"]))
    label = np.asarray(a["label"])[0]
    assert (label == TUMOR["esophagus"]).any() or (label == TUMOR["uterus"]).any()


def test_labels_become_the_classes_of_the_configured_organs():
    """Output ids -> network classes: [liver, colon, uterus] -> 0..6; the other organs are
    background; one organ keeps 0 / 1 / 2."""
    ids = torch.arange(13, dtype=torch.uint8)[None, :, None, None]
    several = ToClassesd(["label"], ("liver", "colon", "uterus"))({"label": ids})["label"]
    expected = [0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0, 5, 6]
    assert several.flatten().tolist() == expected
    wide = ToClassesd(["label"], ["liver", "colon", "uterus"])({"label": ids.long()})["label"]
    assert wide.flatten().tolist() == expected  # the slow path agrees
    one = ToClassesd(["label"], "colon")({"label": ids})["label"]
    assert one.flatten().tolist() == [0] * 7 + [1, 2] + [0] * 4
    relabelled = RelabelToOutputd(["label"], ["colon", "uterus"])(
        {"label": np.array([[[[10, 11, 12, 1, 7]]]]), "labelmap": "phantom"}
    )["label"]
    assert np.asarray(relabelled).flatten().tolist() == [7, 9, 11, 1, 0]


def test_the_network_s_classes_follow_the_configured_organs(phantom_dataset, tmp_path):
    one = TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path / "a"))
    assert one.classes == {"background": 0, "liver": 1, "liver_tumor": 2}
    assert one.model.out_channels == 3
    six = TrainConfig.from_dict(
        tiny_config(
            phantom_dataset,
            tmp_path / "b",
            organ=["uterus", "esophagus", "colon", "kidney", "pancreas", "liver"],
        )
    )
    assert six.model.out_channels == 13
    assert six.classes == {name: i for name, i in [("background", 0), *_output_names()]}
    settings = tiny_config(phantom_dataset, tmp_path / "c", organ=["liver", "colon"])
    settings["model"]["out_channels"] = 4
    with pytest.raises(InputError, match="out_channels: must be 5"):
        TrainConfig.from_dict(settings)
    with pytest.raises(InputError, match="organ: organ 'lung': no organ profile"):
        TrainConfig.from_dict(tiny_config(phantom_dataset, tmp_path / "d", organ=["colon", "lung"]))
    with pytest.raises(InputError, match=r"different organs.*\(colon more than once\)"):
        TrainConfig.from_dict(
            tiny_config(phantom_dataset, tmp_path / "e", organ=["colon", "colon"])
        )


def _output_names():
    pairs = {**OUTPUT_LABELS.organs, **OUTPUT_LABELS.tumors}
    return sorted(((name, ids[0]) for name, ids in pairs.items()), key=lambda p: p[1])


@pytest.mark.slow
def test_a_three_organ_segmentor_trains_on_phantoms(phantom_dataset, tmp_path):
    """liver, colon and uterus tumors synthesized online in healthy phantoms; a 7-class network
    (background, each organ and its tumor) trains, validates and saves its classes."""
    from tumorsynth.training.segmentation import train_segmentation

    settings = tiny_config(
        phantom_dataset,
        tmp_path / "run",
        organ=["colon", "liver", "uterus"],
        tumor_size="small",
        tumors_per_case=1,
    )
    settings["optim"] |= {"max_steps": 4}
    settings["train"] |= {"val_every": 4, "checkpoint_every": 4}
    config = TrainConfig.from_dict(settings)
    result = train_segmentation(config, progress=False)
    assert result.steps == 4
    stored = json.loads((tmp_path / "run" / "checkpoints" / "last" / "config.json").read_text())
    classes = stored["config"]["classes"]
    assert classes == {
        "background": 0,
        "liver": 1,
        "liver_tumor": 2,
        "colon": 3,
        "colon_tumor": 4,
        "uterus": 5,
        "uterus_tumor": 6,
    }
    assert stored["config"]["model"]["out_channels"] == 7
    assert stored["config"]["organs"] == ["liver", "colon", "uterus"]
    with open(tmp_path / "run" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert any(r["val_tumor_dsc"] for r in rows) and any(r["loss"] for r in rows)


def test_export_nnunet_labels_colon_and_uterus_tumors(tmp_path):
    """``export-nnunet --organ colon,uterus``: every case has a colon and a uterus tumor, the
    labels are the output convention (real cases converted too), and dataset.json lists all
    thirteen labels, consecutive."""
    import nibabel as nib
    from tiny import synthesize_phantom

    from tumorsynth.cli.main import main
    from tumorsynth.io.nifti import save_volume

    healthy, real = tmp_path / "healthy", tmp_path / "real"
    for i in range(2):  # 2.5 mm: the colon wall is resolved (see the wall shape's tests)
        ct, seg = make_phantom(i, shape=(128, 108, 64), spacing_mm=(2.5, 2.5, 3.0))
        save_volume(ct, healthy / "imagesTr" / f"h{i}_0000.nii.gz")
        save_volume(seg, healthy / "labelsTr" / f"h{i}.nii.gz")
    annotated = synthesize_phantom((ct, seg), organ="uterus", count=1, size="small", rng=1)
    save_volume(ct, real / "imagesTr" / "r0_0000.nii.gz", array=annotated.image)
    save_volume(seg, real / "labelsTr" / "r0.nii.gz", array=annotated.label)
    out = tmp_path / "Dataset102_SixOrgans"
    code = main(
        [
            "export-nnunet",
            *("--healthy", str(healthy), "--label-map", "phantom"),
            *("--real", str(real), "--real-label-map", "tumorsynth"),
            *("--organ", "colon,uterus", "--size", "small", "--count", "1"),
            *("--out", str(out), "--no-progress"),
        ]
    )
    assert code == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, **dict(_output_names())}
    assert sorted(meta["labels"].values()) == list(range(13))
    assert meta["numTraining"] == 3
    for case in ("h0_syn0", "h1_syn0"):
        label = np.asanyarray(nib.load(str(out / "labelsTr" / f"{case}.nii.gz")).dataobj)
        assert {TUMOR["colon"], TUMOR["uterus"], OUTPUT["colon"], OUTPUT["uterus"]} <= set(
            np.unique(label)
        )
    real_label = np.asanyarray(nib.load(str(out / "labelsTr" / "real_r0.nii.gz")).dataobj)
    assert (real_label == TUMOR["uterus"]).any() and (real_label == OUTPUT["colon"]).any()
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["organ"] for r in records) == ["colon", "colon", "uterus", "uterus"]
