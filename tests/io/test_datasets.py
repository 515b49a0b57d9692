"""Dataset discovery (nnU-Net v2, MSD, AbdomenAtlas) and AbdomenAtlas mask folders."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import (
    CaseRef,
    discover_cases,
    read_abdomenatlas_label,
    read_case_label,
)
from tumorsynth.io.label_maps import PRESETS
from tumorsynth.io.nifti import Volume

SHAPE = (8, 8, 4)
AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
ATLAS = PRESETS["abdomenatlas"]


def write(path: Path, array: np.ndarray | None = None, affine: np.ndarray = AFFINE) -> Path:
    """Write a tiny NIfTI (zeros by default), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros(SHAPE, dtype=np.int16) if array is None else array
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def box(lo: int, hi: int, dtype: type = np.uint8) -> np.ndarray:
    """A mask that is 1 on slices i in [lo, hi)."""
    mask: np.ndarray = np.zeros(SHAPE, dtype=dtype)
    mask[lo:hi] = 1
    return mask


def make_nnunet(
    root: Path, cases: list[str], *, split: str = "Tr", ending: str = ".nii.gz", labels: bool = True
) -> Path:
    for case in cases:
        write(root / f"images{split}" / f"{case}_0000{ending}")
        write(root / f"images{split}" / f"{case}_0001{ending}")  # a second channel, ignored
        if labels:
            write(root / f"labels{split}" / f"{case}{ending}", box(0, 2))
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "liver": 1},
                "numTraining": len(cases),
                "file_ending": ending,
            }
        )
    )
    return root


def make_msd(root: Path, cases: list[str], *, v1: bool = False) -> Path:
    training = []
    for case in cases:
        write(root / "imagesTr" / (f"{case}_0000.nii.gz" if v1 else f"{case}.nii.gz"))
        write(root / "labelsTr" / f"{case}.nii.gz", box(0, 2))
        training.append(
            {"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"}
        )
    write(root / "imagesTs" / "liver_99.nii.gz")
    (root / "dataset.json").write_text(
        json.dumps({"name": "Liver", "training": training, "test": ["./imagesTs/liver_99.nii.gz"]})
    )
    return root


def make_atlas(root: Path, cases: list[str]) -> Path:
    for case in cases:
        write(root / case / "ct.nii.gz")
        write(root / case / "segmentations" / "liver.nii.gz", box(0, 4))
    return root


# --- nnU-Net v2 ----------------------------------------------------------------------------------


def test_nnunet_finds_cases_sorted_with_channel_0_and_labels(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path / "Dataset001_Liver", ["case_2", "case_10", "case_1"])
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["case_1", "case_10", "case_2"]
    assert cases[0] == CaseRef(
        "case_1", root / "imagesTr" / "case_1_0000.nii.gz", root / "labelsTr" / "case_1.nii.gz"
    )
    assert discover_cases(root, layout="nnunet") == cases


def test_nnunet_reads_file_ending_from_dataset_json(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path, ["a", "b"], ending=".nii")
    cases = discover_cases(root)
    assert [c.image.name for c in cases] == ["a_0000.nii", "b_0000.nii"]
    assert [c.label.name for c in cases if c.label] == ["a.nii", "b.nii"]


def test_nnunet_test_split_allows_missing_labels(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path, ["t1", "t2"], split="Ts", labels=False)
    write(root / "labelsTs" / "t2.nii.gz", box(0, 1))
    cases = discover_cases(root, split="test")
    assert [(c.case_id, c.label) for c in cases] == [
        ("t1", None),
        ("t2", root / "labelsTs" / "t2.nii.gz"),
    ]
    with pytest.raises(InputError, match="imagesTr: expected the nnU-Net train image folder"):
        discover_cases(root, split="train")


def test_nnunet_missing_label_names_the_file(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path, ["case_011", "case_012"])
    (root / "labelsTr" / "case_012.nii.gz").unlink()
    with pytest.raises(
        InputError,
        match=r"labelsTr/case_012\.nii\.gz: label file for image "
        r"imagesTr/case_012_0000\.nii\.gz does not exist",
    ):
        discover_cases(root)


def test_nnunet_missing_label_folder_is_named(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path, ["a"], labels=False)
    with pytest.raises(
        InputError, match="labelsTr: expected the nnU-Net training label folder, found nothing"
    ):
        discover_cases(root)


def test_nnunet_unexpected_files_are_named(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path, ["a"])
    (root / "imagesTr" / "._a_0000.nii.gz").write_bytes(b"macOS resource fork")  # hidden: ignored
    assert [c.case_id for c in discover_cases(root)] == ["a"]
    (root / "imagesTr" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"imagesTr/notes\.txt: unexpected entry"):
        discover_cases(root)
    (root / "imagesTr" / "notes.txt").unlink()
    write(root / "labelsTr" / "orphan.nii.gz")
    with pytest.raises(
        InputError,
        match=r"labelsTr/orphan\.nii\.gz: label has no image "
        r"imagesTr/orphan_0000\.nii\.gz",
    ):
        discover_cases(root)


def test_nnunet_missing_channel_0_is_named(tmp_path: Path) -> None:
    root = make_nnunet(tmp_path, ["a"])
    (root / "imagesTr" / "a_0000.nii.gz").unlink()
    with pytest.raises(
        InputError,
        match=r"a_0000\.nii\.gz: channel 0 \(CT\).*found channel\(s\) "
        r"\[1\]",
    ):
        discover_cases(root)


# --- MSD / Decathlon -----------------------------------------------------------------------------


def test_msd_reads_the_training_list(tmp_path: Path) -> None:
    root = make_msd(tmp_path / "Task03_Liver", ["liver_1", "liver_0"])
    cases = discover_cases(root)  # auto: the "training" list wins over imagesTr/
    assert cases == [
        CaseRef(
            "liver_0", root / "imagesTr" / "liver_0.nii.gz", root / "labelsTr" / "liver_0.nii.gz"
        ),
        CaseRef(
            "liver_1", root / "imagesTr" / "liver_1.nii.gz", root / "labelsTr" / "liver_1.nii.gz"
        ),
    ]
    assert discover_cases(root, layout="msd") == cases
    assert discover_cases(root, split="test") == [
        CaseRef("liver_99", root / "imagesTs" / "liver_99.nii.gz", None)
    ]


def test_msd_reads_nnunet_v1_channel_files(tmp_path: Path) -> None:
    root = make_msd(tmp_path, ["la_003"], v1=True)
    [case] = discover_cases(root)
    assert case.case_id == "la_003"
    assert case.image == root / "imagesTr" / "la_003_0000.nii.gz"


def test_msd_missing_files_are_named(tmp_path: Path) -> None:
    root = make_msd(tmp_path, ["liver_0", "liver_1"])
    (root / "labelsTr" / "liver_1.nii.gz").unlink()
    with pytest.raises(
        InputError,
        match=r"labelsTr/liver_1\.nii\.gz: label file for image "
        r"imagesTr/liver_1\.nii\.gz \(listed in dataset\.json "
        r"training\[1\]\) does not exist",
    ):
        discover_cases(root)
    (root / "imagesTr" / "liver_0.nii.gz").unlink()
    with pytest.raises(
        InputError,
        match=r"imagesTr/liver_0\.nii\.gz: image listed in "
        r"dataset\.json training\[0\] does not exist",
    ):
        discover_cases(root)


def test_msd_malformed_entries_are_named(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"training": [{"image": "./x.nii.gz"}]}))
    with pytest.raises(InputError, match=r"dataset\.json: training\[0\]: expected"):
        discover_cases(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(InputError, match=r"dataset\.json: expected a JSON object"):
        discover_cases(tmp_path, layout="msd")


def test_msd_layout_needs_dataset_json(tmp_path: Path) -> None:
    make_atlas(tmp_path, ["c1"])
    with pytest.raises(InputError, match=r"dataset\.json: the MSD layout needs dataset\.json"):
        discover_cases(tmp_path, layout="msd")


# --- AbdomenAtlas --------------------------------------------------------------------------------


def test_abdomenatlas_cases_have_the_segmentations_folder_as_label(tmp_path: Path) -> None:
    root = make_atlas(tmp_path, ["BDMAP_00000002", "BDMAP_00000001"])
    (root / "metadata.csv").write_text("case\n")  # files beside the case folders are ignored
    cases = discover_cases(root)
    assert cases == [
        CaseRef(
            f"BDMAP_0000000{i}",
            root / f"BDMAP_0000000{i}" / "ct.nii.gz",
            root / f"BDMAP_0000000{i}" / "segmentations",
        )
        for i in (1, 2)
    ]
    assert discover_cases(root, layout="abdomenatlas") == cases


def test_abdomenatlas_missing_files_are_named(tmp_path: Path) -> None:
    root = make_atlas(tmp_path, ["c1", "c2"])
    write(root / "c3" / "ct.nii.gz")
    with pytest.raises(InputError, match=r"c3/segmentations: mask folder for image c3/ct\.nii\.gz"):
        discover_cases(root)
    assert discover_cases(root, split="test")[2] == CaseRef("c3", root / "c3" / "ct.nii.gz", None)
    (root / "stray").mkdir()
    with pytest.raises(InputError, match=r"stray/ct\.nii\.gz: CT of AbdomenAtlas case 'stray'"):
        discover_cases(root, split="test")


# --- auto-detection and bad arguments ------------------------------------------------------------


def test_missing_root_and_file_root_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere: expected a dataset folder, found nothing"):
        discover_cases(tmp_path / "nowhere")
    write(tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match=r"ct\.nii\.gz: expected a dataset folder, found a file"):
        discover_cases(tmp_path / "ct.nii.gz")


def test_empty_folder_says_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / ".DS_Store").write_text("")
    with pytest.raises(
        InputError,
        match=r"dataset folder is empty; expected nnU-Net v2.*MSD.*"
        r"AbdomenAtlas",
    ):
        discover_cases(tmp_path)


def test_unknown_contents_are_listed_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "scans").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"expected nnU-Net v2.*found readme\.txt, scans/$"):
        discover_cases(tmp_path)
    case = make_atlas(tmp_path / "atlas", ["c1"]) / "c1"
    with pytest.raises(InputError, match="looks like one AbdomenAtlas case"):
        discover_cases(case)
    images = make_nnunet(tmp_path / "nn", ["a"]) / "imagesTr"
    with pytest.raises(InputError, match="looks like an imagesTr folder"):
        discover_cases(images)


def test_bad_layout_and_split_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"layout: expected 'auto' or one of .*found 'nnunet_v1'"):
        discover_cases(tmp_path, layout="nnunet_v1")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"split: expected 'train' or 'test', found 'val'"):
        discover_cases(tmp_path, split="val")  # type: ignore[arg-type]


def test_duplicate_case_ids_are_refused(tmp_path: Path) -> None:
    root = make_msd(tmp_path, ["liver_0"])
    meta = json.loads((root / "dataset.json").read_text())
    meta["training"] *= 2
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="case id 'liver_0' is used twice"):
        discover_cases(root)


# --- AbdomenAtlas mask folders -------------------------------------------------------------------


def test_masks_combine_into_label_ids_with_tumors_winning(tmp_path: Path) -> None:
    seg = tmp_path / "segmentations"
    write(seg / "liver.nii.gz", box(0, 4))
    write(seg / "liver_tumor.nii.gz", box(1, 2))
    write(seg / "kidney_left.nii.gz", box(4, 5))
    write(seg / "kidney_right.nii.gz", box(5, 6))
    write(seg / "spleen.nii.gz", box(6, 7))
    write(seg / "aorta.nii.gz", box(0, 8))  # not in the label map: ignored
    label = read_abdomenatlas_label(seg, ATLAS)
    assert label.array.dtype == np.uint8
    assert label.shape == SHAPE
    np.testing.assert_allclose(label.affine, AFFINE)
    # spleen is 13 in the abdomenatlas preset (7-12 are colon, esophagus, uterus and tumors)
    assert [int(label.array[i, 0, 0]) for i in range(8)] == [1, 2, 1, 1, 5, 5, 13, 0]
    assert label.meta["label_files"][-1] == "liver_tumor"  # tumors written last
    assert label.path == seg


def test_float_and_0_255_masks_count_as_inside(tmp_path: Path) -> None:
    seg = tmp_path / "segmentations"
    write(seg / "liver.nii.gz", box(0, 4, np.float32))
    write(seg / "pancreas.nii.gz", box(4, 6) * 255)
    label = read_abdomenatlas_label(seg, ATLAS)
    assert np.unique(label.array).tolist() == [0, 1, 3]
    assert np.count_nonzero(label.array == 1) == 4 * 8 * 4


def test_masks_on_different_grids_are_named(tmp_path: Path) -> None:
    seg = tmp_path / "segmentations"
    write(seg / "liver.nii.gz", box(0, 4))
    write(seg / "spleen.nii.gz", np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(InputError, match=r"spleen\.nii\.gz: shape \(8, 8, 5\) does not match"):
        read_abdomenatlas_label(seg, ATLAS)
    write(seg / "spleen.nii.gz", box(6, 7), affine=np.diag([0.8, 0.8, 3.0, 1.0]))
    with pytest.raises(InputError, match=r"spleen\.nii\.gz: affine differs"):
        read_abdomenatlas_label(seg, ATLAS)


def test_masks_must_match_shape_like(tmp_path: Path) -> None:
    seg = tmp_path / "segmentations"
    write(seg / "liver.nii.gz", box(0, 4))
    image = Volume(np.zeros((8, 8, 5), np.int16), AFFINE, None, tmp_path / "ct.nii.gz")
    with pytest.raises(
        InputError,
        match=r"liver\.nii\.gz: shape \(8, 8, 4\) does not match image "
        r"\(8, 8, 5\)",
    ):
        read_abdomenatlas_label(seg, ATLAS, shape_like=image)


def test_folder_without_known_masks_lists_what_it_found(tmp_path: Path) -> None:
    seg = tmp_path / "segmentations"
    write(seg / "aorta.nii.gz")
    with pytest.raises(
        InputError,
        match=r"expected at least one of .*liver\.nii\.gz.*found "
        r"aorta\.nii\.gz",
    ):
        read_abdomenatlas_label(seg, ATLAS)
    with pytest.raises(InputError, match="found nothing"):
        read_abdomenatlas_label(tmp_path / "absent", ATLAS)


def test_label_map_without_folder_files_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "segmentations" / "liver.nii.gz", box(0, 4))
    with pytest.raises(InputError, match="'totalsegmentator'.*use the 'abdomenatlas' preset"):
        read_abdomenatlas_label(tmp_path / "segmentations", PRESETS["totalsegmentator"])


# --- read_case_label -----------------------------------------------------------------------------


def test_read_case_label_dispatches_on_file_or_folder(tmp_path: Path) -> None:
    image = Volume(np.zeros(SHAPE, np.int16), AFFINE, None, tmp_path / "ct.nii.gz")
    [atlas_case] = discover_cases(make_atlas(tmp_path / "atlas", ["c1"]))
    assert atlas_case.label is not None
    assert np.unique(read_case_label(atlas_case.label, ATLAS, image).array).tolist() == [0, 1]
    [nn_case] = discover_cases(make_nnunet(tmp_path / "nn", ["a"]))
    assert nn_case.label is not None
    label = read_case_label(nn_case.label, PRESETS["lits"], image)
    assert np.count_nonzero(label.array) == 2 * 8 * 4
    small = Volume(np.zeros((8, 8, 3), np.int16), AFFINE, None, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match=r"labelsTr/a\.nii\.gz: shape \(8, 8, 4\) does not match"):
        read_case_label(nn_case.label, PRESETS["lits"], small)
