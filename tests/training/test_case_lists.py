"""Training configs read case lists (``.txt``/``.csv``/``.tsv`` of ``IMAGE LABEL`` lines) as they
read dataset folders: the same cases, paths relative to the list, a missing list named by its
config key, and a case id used twice refused naming both files."""

from __future__ import annotations

import shutil

import pytest

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import discover_cases
from tumorsynth.training.config import case_input_problems
from tumorsynth.training.data import case_items


def write_list(phantom_dataset, path, sep=","):
    lines = ["# image, label"]
    for ref in discover_cases(phantom_dataset):
        image, label = (p.relative_to(phantom_dataset) for p in (ref.image, ref.label))
        lines.append(f"{image}{sep}{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("name", "sep"), [("cases.csv", ","), ("cases.tsv", "\t"), ("c.txt", " ")])
def test_a_case_list_gives_the_cases_of_the_folder(phantom_dataset, name, sep):
    listed = write_list(phantom_dataset, phantom_dataset / name, sep)
    try:
        from_folder = case_items([str(phantom_dataset)], "healthy", "phantom")
        from_list = case_items([str(listed)], "healthy", "phantom")
        as_path = case_items([{"path": str(listed), "label_map": "phantom"}], "healthy", None)
    finally:
        listed.unlink()
    assert from_list == from_folder == as_path
    assert len(from_list) == 3 and all(item.kind == "healthy" for item in from_list)


def test_a_missing_list_is_named_by_its_key(tmp_path):
    (problem,) = case_input_problems((str(tmp_path / "none.csv"),), "healthy")
    assert problem == f"healthy[0]: {tmp_path / 'none.csv'}: training case list not found"


def test_a_bad_line_and_a_missing_file_name_the_list_and_line(phantom_dataset, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a.nii.gz\n")
    with pytest.raises(InputError, match=r"bad\.csv:1.*expected IMAGE LABEL \[GROUP\]"):
        case_items([str(bad)], "healthy", "phantom")
    bad.write_text("\n\nmissing_ct.nii.gz, missing_seg.nii.gz\n")
    with pytest.raises(InputError, match=r"bad\.csv:3.*names missing_ct\.nii\.gz"):
        case_items([str(bad)], "healthy", "phantom")


def test_the_same_case_id_twice_is_refused_naming_both_files(phantom_dataset, tmp_path):
    (ref, *_) = discover_cases(phantom_dataset)
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(ref.image, other / ref.image.name)
    listed = tmp_path / "cases.txt"
    listed.write_text(f"{ref.image} {ref.label}\n{other / ref.image.name} {ref.label}\n")
    with pytest.raises(InputError, match="is used twice among the healthy cases") as caught:
        case_items([str(listed)], "healthy", "phantom")
    assert str(ref.image) in str(caught.value) and str(other) in str(caught.value)
