"""RandTumorSynthd: the MONAI dictionary transform for on-the-fly tumor synthesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from scipy import ndimage

from tumorsynth.errors import InputError, PlacementError
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.transforms import RandTumorSynthd

KEYS = ("image", "label")
#: Phantom label ids (the "phantom" preset) and output ids (the default convention).
LIVER, PANCREAS, KIDNEY, SPLEEN, VESSEL, BONE = 1, 3, 5, 7, 8, 9
LIVER_TUMOR, PANCREAS_TUMOR, KIDNEY_TUMOR = 2, 4, 6
# The phantom's hollow organs and uterus (ids 10, 11, 12) and their output ids (7, 9, 11).
COLON, ESOPHAGUS, UTERUS = 10, 11, 12
OUT_COLON, OUT_ESOPHAGUS, OUT_UTERUS = 7, 9, 11
OUTPUT_IDS = set(range(13))


# -- helpers ---------------------------------------------------------------------------------------
def make_transform(**kwargs: object) -> RandTumorSynthd:
    options: dict[str, object] = {"organ": "liver", "label_map": "phantom", "records_key": "tumors"}
    options.update(kwargs)
    return RandTumorSynthd(KEYS, **options)  # type: ignore[arg-type]


def meta_sample(ct: Volume, seg: Volume) -> dict[str, MetaTensor]:
    """A channel-first MetaTensor sample as LoadImaged + EnsureChannelFirstd would give it."""
    affine = torch.as_tensor(ct.affine)
    return {
        "image": MetaTensor(torch.as_tensor(ct.array[None].astype(np.float32)), affine=affine),
        "label": MetaTensor(torch.as_tensor(seg.array[None].astype(np.float32)), affine=affine),
    }


def numpy_sample(ct: Volume, seg: Volume) -> dict[str, object]:
    return {
        "image": ct.array[None].copy(),
        "label": seg.array[None].copy(),
        "image_meta_dict": {"affine": ct.affine.copy()},
    }


def as_array(value: object) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def assert_changes_near_tumors(
    changed: np.ndarray, records: list[dict], affine: np.ndarray
) -> None:
    """Every changed voxel lies near a tumor (its blurred edge and mass effect), none far away."""
    assert changed.any()
    voxels = np.argwhere(changed)
    world = (affine @ np.c_[voxels, np.ones(len(voxels))].T)[:3].T
    reach_mm = 2.0 * float(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)).max())
    ratio = np.min(
        [
            np.linalg.norm(world - np.asarray(r["center_mm"]), axis=1)
            / (3.0 * max(r["radii_mm"]) + reach_mm)
            for r in records
        ],
        axis=0,
    )
    assert ratio.max() <= 1.0


def equivalent_diameter_mm(volume_ml: float) -> float:
    return (6.0 * volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)


@pytest.fixture(scope="module")
def phantom_files(
    phantom: tuple[Volume, Volume], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    ct, seg = phantom
    folder = tmp_path_factory.mktemp("phantom_nifti")
    save_volume(ct, folder / "ct.nii.gz")
    save_volume(seg, folder / "seg.nii.gz")
    return {"image": str(folder / "ct.nii.gz"), "label": str(folder / "seg.nii.gz")}


@pytest.fixture(scope="module")
def fine_phantom() -> tuple[Volume, Volume]:
    """The same anatomy as ``phantom`` (seed 0, same field of view) at 1.5 x 1.5 x 2 mm."""
    return make_phantom(0, shape=(213, 180, 96), spacing_mm=(1.5, 1.5, 2.0))


@pytest.fixture()
def restore_global_rng():
    """Tests that seed the global generators put them back afterwards."""
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    yield
    np.random.set_state(np_state)
    torch.set_rng_state(torch_state)


def load(files: dict[str, str], *transforms: object, seed: int = 0) -> dict[str, object]:
    """``files`` through a Compose seeded with ``seed`` (a Compose reseeds its members when
    built, from the global generator: seeding the transform before would not hold)."""
    pipeline = Compose(
        [LoadImaged(keys=KEYS, image_only=True), EnsureChannelFirstd(keys=KEYS), *transforms]
    ).set_random_state(seed)
    return pipeline(dict(files))


# -- in a MONAI pipeline ---------------------------------------------------------------------------
def test_in_compose_adds_liver_tumors_with_records_and_keeps_the_grid(phantom_files, phantom):
    ct, seg = phantom
    out = load(phantom_files, make_transform(count=2), seed=0)
    image, label = out["image"], out["label"]
    assert isinstance(image, MetaTensor) and isinstance(label, MetaTensor)
    assert tuple(image.shape) == (1, *ct.shape) and tuple(label.shape) == (1, *ct.shape)
    np.testing.assert_allclose(image.affine.numpy(), ct.affine, atol=1e-5)
    np.testing.assert_allclose(label.affine.numpy(), ct.affine, atol=1e-5)
    lab = as_array(label)[0]
    tumor = lab == LIVER_TUMOR
    assert tumor.any()
    assert set(np.unique(lab).astype(int)) <= {
        0, LIVER, LIVER_TUMOR, PANCREAS, KIDNEY, OUT_COLON, OUT_ESOPHAGUS, OUT_UTERUS
    }  # fmt: skip
    assert np.all(seg.array[tumor] == LIVER)  # tumors replace liver, nothing else
    records = out["tumors"]
    assert len(records) == 2
    assert all(r["organ"] == "liver" and r["tumor_label"] == LIVER_TUMOR for r in records)
    assert sum(r["n_voxels"] for r in records) == int(tumor.sum())
    # The image changed in the tumors (darker than the liver around them), nowhere far away.
    img = as_array(image)[0]
    changed = img != ct.array
    assert changed[tumor].mean() > 0.9
    assert_changes_near_tumors(changed, records, ct.affine)
    assert img[tumor].mean() < ct.array[tumor].mean() - 5.0


def test_records_locate_tumors_through_the_affine(phantom_files, phantom):
    ct, _ = phantom
    out = load(phantom_files, make_transform(count=2), seed=1)
    lab = as_array(out["label"])[0]
    for record in out["tumors"]:
        center = np.asarray(record["center_vox"])
        world = ct.affine @ np.append(center, 1.0)
        np.testing.assert_allclose(world[:3], record["center_mm"], atol=1e-2)
        assert lab[tuple(np.rint(center).astype(int))] == LIVER_TUMOR


def test_prob_zero_changes_no_voxel_and_converts_labels(phantom_files, phantom):
    _, seg = phantom
    reference = load(phantom_files)
    out = load(phantom_files, make_transform(prob=0.0))
    assert isinstance(out["image"], MetaTensor) and isinstance(out["label"], MetaTensor)
    np.testing.assert_array_equal(as_array(out["image"]), as_array(reference["image"]))
    np.testing.assert_allclose(out["image"].affine.numpy(), reference["image"].affine.numpy())
    assert out["tumors"] == []
    lab = as_array(out["label"])[0]
    expected = np.zeros(seg.shape, dtype=np.uint8)
    expected[seg.array == LIVER] = 1
    expected[seg.array == PANCREAS] = 3
    expected[seg.array == KIDNEY] = 5  # spleen 7, vessel 8 and bone 9 are not output classes
    expected[seg.array == COLON] = OUT_COLON
    expected[seg.array == ESOPHAGUS] = OUT_ESOPHAGUS
    expected[seg.array == UTERUS] = OUT_UTERUS
    np.testing.assert_array_equal(lab, expected)
    assert not np.isin(lab, (LIVER_TUMOR, PANCREAS_TUMOR, KIDNEY_TUMOR)).any()
    assert not lab[np.isin(seg.array, (SPLEEN, VESSEL, BONE))].any()  # not output classes


def test_inputs_are_not_modified(phantom):
    ct, seg = phantom
    sample = meta_sample(ct, seg)
    before = {k: v.clone() for k, v in sample.items()}
    out = make_transform(count=1).set_random_state(0)(sample)
    assert set(sample) == set(KEYS)  # no records key added to the caller's dict
    for key in KEYS:
        assert torch.equal(sample[key], before[key])
        assert out[key] is not sample[key]
    assert (as_array(out["label"]) == LIVER_TUMOR).any()


# -- randomness ------------------------------------------------------------------------------------
def test_set_random_state_returns_self():
    transform = make_transform()
    assert transform.set_random_state(seed=5) is transform
    assert transform.set_random_state(state=np.random.RandomState(5)) is transform


@pytest.mark.usefixtures("restore_global_rng")
def test_same_seed_same_output_whatever_the_global_rng(phantom):
    ct, seg = phantom
    outputs = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        outputs.append(make_transform().set_random_state(seed=5)(meta_sample(ct, seg)))
    a, b = outputs
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert a["tumors"] == b["tumors"] and len(a["tumors"]) > 0


def test_randomness_comes_from_self_R(phantom):
    ct, seg = phantom
    by_seed = make_transform().set_random_state(seed=5)(meta_sample(ct, seg))
    by_state = make_transform().set_random_state(state=np.random.RandomState(5))(
        meta_sample(ct, seg)
    )
    assert torch.equal(by_seed["image"], by_state["image"])
    assert by_seed["tumors"] == by_state["tumors"]


def test_calls_draw_from_no_global_generator(phantom):
    ct, seg = phantom
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    make_transform(count=1).set_random_state(0)(meta_sample(ct, seg))
    after = np.random.get_state()
    assert (
        np_state[0] == after[0]
        and np.array_equal(np_state[1], after[1])
        and np_state[2] == after[2]
    )
    assert torch.equal(torch_state, torch.get_rng_state())


def test_different_seeds_and_successive_calls_differ(phantom):
    ct, seg = phantom
    first = make_transform().set_random_state(seed=5)
    a1, a2 = first(meta_sample(ct, seg)), first(meta_sample(ct, seg))
    b = make_transform().set_random_state(seed=6)(meta_sample(ct, seg))
    assert not torch.equal(a1["label"], b["label"])
    assert not torch.equal(a1["label"], a2["label"])  # draws again on every call
    assert {r["seed"] for r in a1["tumors"]}.isdisjoint(r["seed"] for r in b["tumors"])


# -- spacing and orientation -----------------------------------------------------------------------
def test_tumor_size_is_physical_at_any_spacing(phantom, fine_phantom):
    mean_diameters = []
    for ct, seg in (phantom, fine_phantom):
        voxel_ml = float(np.prod(ct.spacing_mm)) / 1000.0
        diameters = []
        for seed in range(2):
            out = make_transform(size="small").set_random_state(seed)(meta_sample(ct, seg))
            records = out["tumors"]
            assert records
            n_tumor = int((as_array(out["label"]) == LIVER_TUMOR).sum())
            assert sum(r["volume_ml"] for r in records) == pytest.approx(
                n_tumor * voxel_ml, rel=1e-3
            )
            for record in records:
                assert record["n_voxels"] * voxel_ml == pytest.approx(record["volume_ml"], rel=1e-3)
                diameters.append(equivalent_diameter_mm(record["volume_ml"]))
        assert 10.0 <= min(diameters) and max(diameters) <= 24.0, diameters
        mean_diameters.append(float(np.mean(diameters)))
    # Four times as many voxels per mL at the fine spacing, yet the same tumor size in mm.
    assert mean_diameters[0] == pytest.approx(mean_diameters[1], rel=0.15)


def test_larger_size_class_gives_larger_tumors(phantom):
    ct, seg = phantom
    volumes = {}
    for size in ("tiny", "small", "medium"):
        out = make_transform(size=size, count=1).set_random_state(3)(meta_sample(ct, seg))
        volumes[size] = out["tumors"][0]["volume_ml"]
    assert volumes["tiny"] < volumes["small"] < volumes["medium"]


def test_permuted_and_flipped_axes(phantom):
    """A (z, y, x) volume with a flipped axis: spacing and world centres come from the affine."""
    ct, seg = phantom
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, ct.shape[0] - 1
    permute = np.zeros((4, 4))
    permute[0, 2] = permute[1, 1] = permute[2, 0] = permute[3, 3] = 1.0
    affine = ct.affine @ flip @ permute
    image = np.flip(ct.array, 0).transpose(2, 1, 0).copy()
    label = np.flip(seg.array, 0).transpose(2, 1, 0).copy()
    turned = (Volume(image, affine), Volume(label, affine))
    out = make_transform(size="small", count=2).set_random_state(0)(meta_sample(*turned))
    assert tuple(out["image"].shape) == (1, *image.shape)
    np.testing.assert_allclose(out["image"].affine.numpy(), affine)
    for record in out["tumors"]:
        assert 10.0 <= equivalent_diameter_mm(record["volume_ml"]) <= 24.0
        world = affine @ np.append(record["center_vox"], 1.0)
        np.testing.assert_allclose(world[:3], record["center_mm"], atol=1e-2)
        # The same world point is liver in the original orientation.
        ijk = np.rint(np.linalg.solve(ct.affine, world)[:3]).astype(int)
        assert seg.array[tuple(ijk)] == LIVER


# -- plain arrays ----------------------------------------------------------------------------------
def test_numpy_input_with_meta_dict_affine(phantom):
    ct, seg = phantom
    sample = numpy_sample(ct, seg)
    out = make_transform(count=1).set_random_state(0)(sample)
    assert isinstance(out["image"], np.ndarray) and isinstance(out["label"], np.ndarray)
    assert out["image"].shape == (1, *ct.shape) and out["image"].dtype == ct.array.dtype
    assert (out["label"] == LIVER_TUMOR).any()
    assert set(np.unique(out["label"]).astype(int)) <= OUTPUT_IDS
    # Same seed on a MetaTensor with that affine: the same tumors.
    meta = make_transform(count=1).set_random_state(0)(meta_sample(ct, seg))
    np.testing.assert_array_equal(out["label"], as_array(meta["label"]))
    assert out["tumors"] == meta["tumors"]


def test_numpy_input_without_affine_is_refused(phantom):
    ct, seg = phantom
    sample = {"image": ct.array[None].copy(), "label": seg.array[None].copy()}
    with pytest.raises(InputError, match="MetaTensor"):
        make_transform().set_random_state(0)(sample)


@pytest.mark.parametrize("layout", ["no_channel", "two_channels", "channel_last"])
def test_wrong_channel_layout_is_refused(phantom, layout):
    ct, seg = phantom
    sample = numpy_sample(ct, seg)
    if layout == "no_channel":
        sample["image"], sample["label"] = ct.array.copy(), seg.array.copy()
    elif layout == "two_channels":
        sample["image"] = np.stack([ct.array, ct.array])
    else:
        sample["image"] = ct.array[..., None].copy()
    with pytest.raises(InputError, match=r"channel-first.*\(1, X, Y, Z\)"):
        make_transform().set_random_state(0)(sample)


# -- organs and errors -----------------------------------------------------------------------------
def test_several_organs_are_chosen_among(phantom):
    ct, seg = phantom
    transform = make_transform(organ=("liver", "kidney"), size="tiny", count=1).set_random_state(0)
    seen = set()
    for _ in range(10):
        out = transform(meta_sample(ct, seg))
        organs = {r["organ"] for r in out["tumors"]}
        assert len(organs) == 1  # one organ per call
        organ = organs.pop()
        seen.add(organ)
        lab = as_array(out["label"])
        tumor_id = {"liver": LIVER_TUMOR, "kidney": KIDNEY_TUMOR}[organ]
        other_id = {"liver": KIDNEY_TUMOR, "kidney": LIVER_TUMOR}[organ]
        assert (lab == tumor_id).any() and not (lab == other_id).any()
    assert seen == {"liver", "kidney"}


def liverless(ct: Volume, seg: Volume) -> dict[str, MetaTensor]:
    label = seg.array.copy()
    label[label == LIVER] = 0
    return meta_sample(ct, Volume(label, seg.affine))


def test_absent_organ_skips_with_a_warning(phantom):
    ct, seg = phantom
    sample = liverless(ct, seg)
    with pytest.warns(UserWarning, match="liver"):
        out = make_transform(on_error="skip").set_random_state(0)(sample)
    assert out["tumors"] == []
    assert torch.equal(out["image"], sample["image"])
    lab = as_array(out["label"])
    assert set(np.unique(lab).astype(int)) - {OUT_COLON, OUT_ESOPHAGUS, OUT_UTERUS} == {
        0, PANCREAS, KIDNEY
    }  # fmt: skip


def test_absent_organ_raises_by_default(phantom):
    ct, seg = phantom
    with pytest.raises(PlacementError, match="liver.*absent"):
        make_transform().set_random_state(0)(liverless(ct, seg))


def test_allow_missing_keys(phantom):
    ct, seg = phantom
    image_only = {"image": meta_sample(ct, seg)["image"]}
    out = make_transform(allow_missing_keys=True).set_random_state(0)(image_only)
    assert set(out) == {"image"} and out["image"] is image_only["image"]
    with pytest.raises(InputError, match="'label'"):
        make_transform().set_random_state(0)(image_only)
    # With both keys present it still synthesizes.
    both = make_transform(allow_missing_keys=True, count=1).set_random_state(0)(
        meta_sample(ct, seg)
    )
    assert (as_array(both["label"]) == LIVER_TUMOR).any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"organ": "brain"}, "brain"),
        ({"organ": ("liver", "lung")}, "lung"),
        ({"size": "huge"}, "huge"),
        ({"count": -1}, "-1"),
        ({"on_error": "ignore"}, "ignore"),
        ({"label_map": "no_such_preset"}, "no_such_preset"),
    ],
)
def test_invalid_arguments_are_refused_in_init(kwargs, message):
    with pytest.raises(InputError, match=message):
        make_transform(**kwargs)


def test_keys_must_be_image_and_label():
    with pytest.raises(InputError, match="image_key, label_key"):
        RandTumorSynthd(("image",), organ="liver", label_map="phantom")


# -- in a MONAI Dataset ----------------------------------------------------------------------------
def test_in_dataset_and_dataloader(phantom_files, phantom):
    ct, _ = phantom
    transform = Compose(
        [
            LoadImaged(keys=KEYS, image_only=True),
            EnsureChannelFirstd(keys=KEYS),
            make_transform(size="tiny", records_key=None),
        ]
    )
    dataset = Dataset(data=[dict(phantom_files), dict(phantom_files)], transform=transform)
    batches = list(DataLoader(dataset, batch_size=2, num_workers=0))
    assert len(batches) == 1
    batch = batches[0]
    assert tuple(batch["image"].shape) == (2, 1, *ct.shape)
    assert tuple(batch["label"].shape) == (2, 1, *ct.shape)
    labels = as_array(batch["label"])
    assert all((labels[i] == LIVER_TUMOR).any() for i in range(2))
    assert not np.array_equal(labels[0], labels[1])  # each item drew its own tumors
    assert "tumors" not in batch


# -- real data -------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_totalsegmentator_pancreas(totalseg):
    ct, seg = totalseg
    affine = torch.as_tensor(ct.affine)
    sample = {
        "image": MetaTensor(torch.as_tensor(ct.array[None].astype(np.float32)), affine=affine),
        "label": MetaTensor(torch.as_tensor(seg.array[None].astype(np.int16)), affine=affine),
    }
    transform = RandTumorSynthd(
        KEYS,
        organ="pancreas",
        size="small",
        count=1,
        label_map="totalsegmentator",
        records_key="tumors",
    )
    out = transform.set_random_state(0)(sample)
    np.testing.assert_allclose(out["image"].affine.numpy(), ct.affine)
    lab = as_array(out["label"])[0]
    tumor = lab == PANCREAS_TUMOR
    pancreas = seg.array == 7
    assert tumor.any()
    assert out["tumors"][0]["organ"] == "pancreas"
    assert out["tumors"][0]["n_voxels"] == int(tumor.sum())
    assert (tumor & pancreas).sum() > 0.5 * tumor.sum()
    near_pancreas = ndimage.binary_dilation(pancreas, iterations=2)  # 6 mm at 3 mm spacing
    assert not (tumor & ~near_pancreas).any()
    assert set(np.unique(lab).astype(int)) <= {0, 1, 3, 4, 5, OUT_COLON}  # colon: TS id 20
    assert np.array_equal(lab == 1, seg.array == 5)  # liver 5 -> 1, untouched
    assert_changes_near_tumors(as_array(out["image"])[0] != ct.array, out["tumors"], ct.affine)


def test_an_online_filter_judges_every_tumor_in_loader_workers(phantom, tmp_path):
    """FreeTumor's online filter: settings travel to DataLoader workers, which load the
    segmentor themselves; every tumor's record carries its verdict."""
    from tiny import constant_segmentor

    always = constant_segmentor(tmp_path / "always", 5.0)
    ct, seg = phantom
    transform = make_transform(count=1, filter={"checkpoints": [str(always)], "device": "cpu"})
    dataset = Dataset(
        [numpy_sample(ct, seg)] * 2, transform=Compose([transform]).set_random_state(0)
    )
    batches = list(DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=lambda b: b))
    verdicts = [t["filter_verdict"]["verdict"] for b in batches for t in b[0]["tumors"]]
    assert verdicts == ["passed", "passed"]
    never = constant_segmentor(tmp_path / "never", -5.0)
    rejected = make_transform(count=1, filter={"checkpoints": str(never), "retries": 1})
    out = rejected.set_random_state(0)(numpy_sample(ct, seg))
    assert [t["filter_verdict"]["attempts"] for t in out["tumors"]] == [2]
    with pytest.raises(InputError, match="threshold"):
        make_transform(filter={"checkpoints": [str(always)], "threshold": 2})
    with pytest.raises(InputError, match="found"):
        make_transform(filter={"checkpoints": [str(always)], "colour": "red"})
