"""Label-map JSON that could silently drop or merge organs; image files read with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from shared_data import require_module

from tumorsynth.errors import InputError
from tumorsynth.io import load_volume
from tumorsynth.io.label_maps import (
    PRESETS,
    check_ids_fit_map,
    check_shared_ids,
    resolve_label_map,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_duplicate_key_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "map.json", '{"liver": 1, "kidney": [2, 3], "liver": 5}')
    with pytest.raises(InputError) as info:
        resolve_label_map(path)
    text = str(info.value)
    assert str(path) in text and "'liver' is given twice" in text and "1" in text and "5" in text


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"liver": 1, "spleen": 1}, ("'liver'", "'spleen'", "id 1")),
        ({"liver": 1, "liver_tumor": 1}, ("'liver'", "'liver_tumor'", "id 1")),
        ({"liver_tumor": 2, "kidney_tumor": 2, "liver": 1}, ("'liver_tumor'", "'kidney_tumor'")),
        ({"kidney": [2, 3], "kidney_left": [3, 4]}, ("'kidney'", "'kidney_left'", "id 3")),
        ({"organ": 1, "tumor": 1}, ("'organ'", "'tumor'")),
    ],
    ids=["two organs", "organ and its tumor", "two tumors", "part not a subset", "generic"],
)
def test_two_entries_sharing_an_id_are_refused(tmp_path: Path, data: dict, names) -> None:
    path = write(tmp_path / "map.json", json.dumps(data))
    with pytest.raises(InputError) as info:
        resolve_label_map(path)
    text = str(info.value)
    assert str(path) in text and "share label id" in text
    assert all(name in text for name in names)


def test_parts_of_an_organ_may_reuse_its_ids(tmp_path: Path) -> None:
    data = {"kidney": [2, 3], "kidney_right": 2, "kidney_left": 3, "liver": 5}
    lmap = resolve_label_map(write(tmp_path / "map.json", json.dumps(data)))
    assert lmap.organ_ids("kidney") == (2, 3) and lmap.organ_ids("kidney_left") == (3,)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_follows_the_shared_id_rule(name: str) -> None:
    preset = PRESETS[name]
    check_shared_ids({**preset.organs, **preset.tumors}, name)


def test_totalsegmentator_knows_its_other_classes() -> None:
    known = PRESETS["totalsegmentator"].known_ids()
    assert {1, 2, 3, 5, 7, 117} <= known and 118 not in known


def test_ids_of_another_convention_are_refused_and_named() -> None:
    with pytest.raises(InputError) as info:
        check_ids_fit_map(
            {"a.nii.gz": {1, 2}}, PRESETS["tumorsynth"], [6], flag="--x", organ="kidney"
        )
    text = str(info.value)
    assert "--x" in text and "a.nii.gz" in text and "[6]" in text and "kits" in text
    assert check_ids_fit_map({"a.nii.gz": {5, 6}}, PRESETS["tumorsynth"], [6], flag="--x") == []


# --- images -------------------------------------------------------------------------------------


def test_two_dimensional_image_says_2d_not_4d(tmp_path: Path) -> None:
    path = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 48), np.int16), np.eye(4)), str(path))
    with pytest.raises(InputError) as info:
        load_volume(path)
    text = str(info.value)
    assert "expected a 3-D image, found 2-D shape (64, 48)" in text and "4-D" not in text


def test_four_dimensional_image_is_told_to_split(tmp_path: Path) -> None:
    path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.eye(4)), str(path))
    with pytest.raises(InputError, match="found 4-D shape .*split 4-D"):
        load_volume(path)


def _write_series(folder: Path, n_slices: int, spacing_z: float, skip: int | None) -> None:
    sitk = require_module("SimpleITK")
    array = np.arange(n_slices * 12 * 10, dtype=np.int16).reshape(n_slices, 12, 10)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.7, spacing_z))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    folder.mkdir()
    for k in range(n_slices):
        if k == skip:
            continue
        sl = image[:, :, k]
        point = image.TransformIndexToPhysicalPoint((0, 0, k))
        sl.SetMetaData("0020|0032", "\\".join(str(v) for v in point))
        sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        sl.SetMetaData("0020|0013", str(k))
        sl.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.42")
        sl.SetMetaData("0020|000d", "1.2.826.0.1.3680043.2.1125.1.41")
        sl.SetMetaData("0008|0060", "CT")
        sl.SetMetaData("0028|0030", "0.7\\0.8")
        sl.SetMetaData("0018|0050", str(spacing_z))
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_with_a_missing_slice_is_refused_naming_the_gap(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    _write_series(folder, 8, 2.0, skip=4)
    with pytest.raises(InputError) as info:
        load_volume(folder)
    text = str(info.value)
    assert str(folder) in text and "evenly spaced" in text
    assert "gap of 4 mm" in text and "slice003.dcm" in text and "slice005.dcm" in text
    assert "(at 6.00 mm)" in text and "(at 10.00 mm)" in text
    assert "spacing is 2 mm" in text and "a slice is missing" in text


def test_complete_dicom_series_still_reads(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    _write_series(folder, 8, 2.0, skip=None)
    assert load_volume(folder).shape == (10, 12, 8)
