"""Where the tumors of a realism study come from: list files, manifests (pre-existing tumors of the
source scan left out) and datasets; bad sources refused naming the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tumorsynth.errors import InputError
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.pipelines.realism_inputs import cases_from_sources, check_out_apart
from tumorsynth.realism import FeatureSettings, extract_features

OWN = FeatureSettings(radiomics=False)


@pytest.fixture(scope="module")
def lesion_dataset(phantom, tmp_path_factory) -> Path:
    """An nnU-Net folder with one phantom whose liver holds a real tumor (id 2) of about 40 mm."""
    ct, seg = phantom
    label = seg.array.copy()
    lesion = np.zeros(label.shape, bool)
    lesion[68:84, 47:63, 36:46] = True
    lesion &= label == 1
    label[lesion] = 2
    image = ct.array.astype(np.float32).copy()
    image[lesion] -= 30.0  # a hypodense lesion
    root = tmp_path_factory.mktemp("lesion") / "Dataset002_Lesion"
    save_volume(Volume(image, ct.affine), root / "imagesTr" / "les0_0000.nii.gz")
    save_volume(Volume(label, seg.affine), root / "labelsTr" / "les0.nii.gz")
    return root


@pytest.fixture(scope="module")
def host_matched(lesion_dataset, tmp_path_factory) -> Path:
    """Two synthetic variants of the lesion scan, a small liver tumor each, 5 mm from the lesion."""
    out = tmp_path_factory.mktemp("run") / "synth"
    from tumorsynth.cli.main import main

    argv = [
        "synthesize", "--dataset", lesion_dataset, "--out", out, "--label-map", "phantom",
        "--organ", "liver", "--count", 1, "--size", "medium", "--per-case", 2, "--seed", 4,
        "--exclude-label", 2, "--exclude-margin-mm", 5, "--no-progress",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out / "manifest.jsonl"


def test_manifest_cases_leave_out_the_tumors_of_the_source_scan(host_matched, lesion_dataset):
    cases = cases_from_sources([host_matched], source="synthetic", label_map=None)
    assert len(cases) == 2
    for case in cases:
        assert case.ignore_label is not None and case.ignore_label.name == "les0.nii.gz"
        assert case.group == "les0"  # the scan it was made from: the real case's group
        assert case.organs == ("liver",)
    rows = extract_features(cases, OWN, progress=False)
    assert len(rows) == 2  # one synthetic tumor per case; the real lesion is not measured
    for row in rows:  # neither row is the lesion (voxels [68:84, 47:63, 36:46])
        inside = [
            lo <= c < hi for c, (lo, hi) in zip(row.center_vox, ((68, 84), (47, 63), (36, 46)))
        ]
        assert not all(inside)
    # without leaving it out, the real lesion would count as a synthetic tumor in each case
    from dataclasses import replace

    plain = [replace(case, ignore_label=None, ignore_label_map=None) for case in cases]
    assert len(extract_features(plain, OWN, progress=False)) == 4


def test_real_dataset_and_list_give_the_same_case(lesion_dataset, tmp_path):
    image = lesion_dataset / "imagesTr" / "les0_0000.nii.gz"
    label = lesion_dataset / "labelsTr" / "les0.nii.gz"
    listing = tmp_path / "real.csv"
    listing.write_text(f"# image, label, group\n{image}, {label}, patient7\n")
    (from_list,) = cases_from_sources([listing], source="real", label_map="phantom")
    (from_dataset,) = cases_from_sources([lesion_dataset], source="real", label_map="phantom")
    assert from_list.image == from_dataset.image and from_list.label == from_dataset.label
    assert from_list.group == "patient7" and from_dataset.group == "les0"
    rows = extract_features([from_list], OWN, progress=False)
    assert [row.organ for row in rows] == ["liver"] and rows[0].source == "real"


def test_list_paths_are_relative_to_the_list(lesion_dataset, tmp_path):
    listing = lesion_dataset / "pairs.txt"
    listing.write_text("imagesTr/les0_0000.nii.gz labelsTr/les0.nii.gz\n")
    try:
        (case,) = cases_from_sources([listing], source="real", label_map="phantom")
        assert case.image == lesion_dataset / "imagesTr" / "les0_0000.nii.gz"
    finally:
        listing.unlink()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("only_one_field.nii.gz\n", r"pairs\.txt:1.*expected IMAGE LABEL \[GROUP\]"),
        ("a.nii.gz b.nii.gz g extra\n", r"pairs\.txt:1.*found 4 field"),
        ("\n# comment\nmissing.nii.gz other.nii.gz\n", r"pairs\.txt:3.*missing\.nii\.gz"),
    ],
)
def test_bad_list_lines_name_the_file_and_line(tmp_path, text, match):
    listing = tmp_path / "pairs.txt"
    listing.write_text(text)
    with pytest.raises(InputError, match=match):
        cases_from_sources([listing], source="real", label_map="phantom")


def test_sources_without_a_label_map_or_of_unknown_kind_are_refused(lesion_dataset, tmp_path):
    with pytest.raises(InputError, match="needs a label map"):
        cases_from_sources([lesion_dataset], source="real", label_map=None)
    odd = tmp_path / "cases.yaml"
    odd.write_text("x: 1\n")
    with pytest.raises(InputError, match="cases.yaml.*expected a dataset folder"):
        cases_from_sources([odd], source="real", label_map="phantom")
    with pytest.raises(InputError, match="nowhere.*does not exist"):
        cases_from_sources([tmp_path / "nowhere"], source="real", label_map="phantom")


def test_the_same_case_twice_is_refused(lesion_dataset):
    with pytest.raises(InputError, match="listed twice"):
        cases_from_sources([lesion_dataset, lesion_dataset], source="real", label_map="phantom")


def test_out_inside_an_input_folder_is_refused(lesion_dataset, host_matched, tmp_path):
    with pytest.raises(InputError, match="inside"):
        check_out_apart(lesion_dataset / "report", [lesion_dataset], "--real")
    with pytest.raises(InputError, match="inside"):
        check_out_apart(host_matched.parent / "report", [host_matched], "--synthetic")
    listing = tmp_path / "pairs.txt"
    listing.write_text("")
    check_out_apart(tmp_path / "report", [listing], "--real")  # a list's folder is no input
