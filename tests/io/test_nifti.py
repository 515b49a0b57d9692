"""NIfTI input/output: exact round trips, validation at the boundary, atomic writes."""

from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tumorsynth.errors import InputError, OutputError
from tumorsynth.io.nifti import (
    CTIntensityWarning,
    Volume,
    check_same_grid,
    load_image,
    load_label,
    load_volume,
    save_volume,
    spacing_from_affine,
)

SHAPE = (24, 20, 12)
SPACING = (0.8, 0.9, 2.5)


def oblique_lps_affine() -> np.ndarray:
    """An LPS-like affine with a rotation about z and an offset: nothing a default would give."""
    theta = np.deg2rad(10.0)
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0.0], [np.sin(theta), np.cos(theta), 0.0], [0.0, 0.0, 1.0]]
    )
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rot @ np.diag(SPACING)
    affine[:3, 3] = [120.5, 98.25, -301.0]
    return affine


def ct_array(seed: int = 0) -> np.ndarray:
    """int16 HU: air around a soft-tissue body with a little bone, plus noise."""
    rng = np.random.default_rng(seed)
    array = np.full(SHAPE, -1000, dtype=np.int16)
    array[4:20, 3:17, :] = 50
    array[10:14, 8:12, :] = 700
    return (array + rng.integers(-15, 16, SHAPE)).astype(np.int16)


def write_nifti(
    path: Path,
    array: np.ndarray,
    affine: np.ndarray | None = None,
    *,
    qform_code: int = 1,
    sform_code: int = 1,
) -> Path:
    affine = oblique_lps_affine() if affine is None else affine
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine, code=sform_code)
    nib.save(img, str(path))
    return path


def folder_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("codes", [(1, 1), (2, 4), (0, 1), (1, 0)])
def test_round_trip_keeps_dtype_affine_codes_zooms_and_values(
    tmp_path: Path, codes: tuple[int, int]
) -> None:
    qform_code, sform_code = codes
    source = write_nifti(
        tmp_path / "ct.nii.gz", ct_array(), qform_code=qform_code, sform_code=sform_code
    )
    vol = load_image(source)
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, ct_array())
    np.testing.assert_allclose(vol.affine, oblique_lps_affine(), atol=1e-5)
    np.testing.assert_allclose(vol.spacing_mm, SPACING, rtol=1e-6)

    target = save_volume(vol, tmp_path / "out" / "ct_copy.nii.gz")
    written = nib.load(str(target))
    original = nib.load(str(source))
    assert written.get_data_dtype() == np.int16
    assert int(written.header["qform_code"]) == qform_code
    assert int(written.header["sform_code"]) == sform_code
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-6)
    np.testing.assert_allclose(written.header.get_zooms(), original.header.get_zooms())
    np.testing.assert_allclose(written.header.get_qform(), original.header.get_qform(), atol=1e-6)
    np.testing.assert_allclose(written.header.get_sform(), original.header.get_sform(), atol=1e-6)
    again = load_volume(target)
    assert again.array.dtype == np.int16
    np.testing.assert_array_equal(again.array, vol.array)


def test_save_with_a_new_array_keeps_the_grid_and_dtype(tmp_path: Path) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    changed = vol.array.copy()
    changed[5:8, 5:8, 5:8] = 20
    save_volume(vol, tmp_path / "changed.nii.gz", array=changed, description="synthetic tumors")
    written = nib.load(str(tmp_path / "changed.nii.gz"))
    assert written.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), changed)
    np.testing.assert_allclose(written.affine, vol.affine, atol=1e-6)
    assert written.header["descrip"].item().startswith(b"synthetic tumors")
    np.testing.assert_array_equal(vol.array, ct_array())  # the volume itself is untouched


@pytest.mark.parametrize("codes", [(1, 1), (1, 0), (0, 0)])
def test_a_changed_affine_wins_over_the_header(tmp_path: Path, codes: tuple[int, int]) -> None:
    """A crop moves the origin; the header it carries must not put the old one back."""
    vol = load_image(
        write_nifti(tmp_path / "ct.nii.gz", ct_array(), qform_code=codes[0], sform_code=codes[1])
    )
    moved = vol.affine.copy()
    moved[:3, 3] += moved[:3, :3] @ np.array([2.0, 3.0, 1.0])  # origin of array[2:, 3:, 1:]
    crop = Volume(np.ascontiguousarray(vol.array[2:, 3:, 1:]), moved, vol.header, vol.path)
    save_volume(crop, tmp_path / "crop.nii.gz")
    again = load_volume(tmp_path / "crop.nii.gz")
    np.testing.assert_allclose(again.affine, moved, atol=1e-4)
    np.testing.assert_array_equal(again.array, ct_array()[2:, 3:, 1:])


def test_label_round_trip_keeps_ids(tmp_path: Path) -> None:
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[4:10, 4:10, 2:6] = 5
    label[6:8, 6:8, 3:5] = 6
    vol = load_label(write_nifti(tmp_path / "seg.nii.gz", label))
    save_volume(vol, tmp_path / "seg_copy.nii.gz")
    again = load_label(tmp_path / "seg_copy.nii.gz")
    assert again.array.dtype == np.uint8
    np.testing.assert_array_equal(again.array, label)


def test_spacing_comes_from_the_affine_not_a_default() -> None:
    assert spacing_from_affine(oblique_lps_affine()) == pytest.approx(SPACING)


def test_scaled_integer_file_is_written_back_in_its_on_disk_type(tmp_path: Path) -> None:
    raw = (ct_array() + 1024).astype(np.uint16)
    img = nib.Nifti1Image(raw, oblique_lps_affine())
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    vol = load_image(tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(vol.array, ct_array())
    save_volume(vol, tmp_path / "copy.nii.gz")
    written = nib.load(str(tmp_path / "copy.nii.gz"))
    assert np.issubdtype(written.get_data_dtype(), np.integer)
    assert written.get_data_dtype().itemsize <= 2
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), ct_array())


# --- shape -------------------------------------------------------------------------------------


def test_4d_with_trailing_singleton_is_read_as_3d(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "ct4d.nii.gz", ct_array()[..., np.newaxis])
    assert nib.load(str(path)).shape == (*SHAPE, 1)
    vol = load_image(path)
    assert vol.shape == SHAPE
    np.testing.assert_array_equal(vol.array, ct_array())
    save_volume(vol, tmp_path / "ct3d.nii.gz")
    assert nib.load(str(tmp_path / "ct3d.nii.gz")).shape == SHAPE


@pytest.mark.parametrize("shape", [(24, 20), (24, 20, 12, 2)])
def test_non_3d_is_refused_naming_file_and_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = write_nifti(tmp_path / "odd.nii.gz", np.zeros(shape, dtype=np.int16), np.eye(4))
    with pytest.raises(InputError, match="3-D") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert str(shape) in str(info.value)


# --- unreadable files ----------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(InputError, match="does not exist") as info:
        load_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii"])
def test_truncated_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    whole = write_nifti(tmp_path / f"whole_{name}", ct_array())
    data = whole.read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as info:
        load_image(cut)
    assert str(cut) in str(info.value)
    assert cut.read_bytes() == data[: len(data) // 2]  # input untouched


@pytest.mark.parametrize("content", [b"", b"not a nifti at all" * 40])
def test_non_nifti_bytes_are_refused_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(content)
    with pytest.raises(InputError, match="NIfTI") as info:
        load_label(path)
    assert str(path) in str(info.value)


# --- intensities and label values ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_image_is_refused(tmp_path: Path, bad: float) -> None:
    array = ct_array().astype(np.float32)
    array[3, 4, 5] = bad
    array[6, 7, 8] = bad
    path = write_nifti(tmp_path / "ct_float.nii.gz", array)
    with pytest.raises(InputError, match="2 NaN/Inf voxels") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_ct_like_image_gives_no_warning(tmp_path: Path) -> None:
    path = write_nifti(tmp_path / "ct.nii.gz", ct_array())
    with warnings.catch_warnings():
        warnings.simplefilter("error", CTIntensityWarning)
        load_image(path)


def test_normalized_intensities_warn_naming_the_file(tmp_path: Path) -> None:
    normalized = ((ct_array().astype(np.float32) + 1000.0) / 2000.0).clip(0.0, 1.0)
    path = write_nifti(tmp_path / "normalized.nii.gz", normalized)
    with pytest.warns(CTIntensityWarning, match="Hounsfield") as record:
        vol = load_image(path)
    assert str(path) in str(record[0].message)
    np.testing.assert_array_equal(vol.array, normalized)  # a warning, not a change


def test_label_with_fractional_values_is_refused(tmp_path: Path) -> None:
    label = np.zeros(SHAPE, dtype=np.float32)
    label[2:5, 2:5, 2:5] = 1.0
    label[8, 8, 8] = 0.5
    path = write_nifti(tmp_path / "seg.nii.gz", label)
    with pytest.raises(InputError, match="fractional") as info:
        load_label(path)
    assert str(path) in str(info.value)


def test_float_label_holding_integers_becomes_uint8(tmp_path: Path) -> None:
    label = np.zeros(SHAPE, dtype=np.float32)
    label[2:5, 2:5, 2:5] = 5.0
    vol = load_label(write_nifti(tmp_path / "seg.nii.gz", label))
    assert vol.array.dtype == np.uint8
    np.testing.assert_array_equal(vol.array, label.astype(np.uint8))


def test_negative_label_ids_are_refused(tmp_path: Path) -> None:
    label = np.zeros(SHAPE, dtype=np.int16)
    label[0, 0, 0] = -1
    path = write_nifti(tmp_path / "seg.nii.gz", label)
    with pytest.raises(InputError, match=">= 0") as info:
        load_label(path)
    assert str(path) in str(info.value)


# --- grids -------------------------------------------------------------------------------------


def _volume(array: np.ndarray, affine: np.ndarray, name: str) -> Volume:
    return Volume(array, affine, None, Path(name))


def test_same_grid_accepts_float_noise_in_the_affine() -> None:
    image = _volume(ct_array(), oblique_lps_affine(), "ct.nii.gz")
    label = _volume(np.zeros(SHAPE, np.uint8), oblique_lps_affine() + 1e-6, "seg.nii.gz")
    check_same_grid(image, label)


def test_shape_mismatch_names_both_shapes_and_the_label() -> None:
    image = _volume(ct_array(), oblique_lps_affine(), "ct.nii.gz")
    label = _volume(np.zeros((24, 20, 11), np.uint8), oblique_lps_affine(), "seg.nii.gz")
    with pytest.raises(InputError) as info:
        check_same_grid(image, label)
    text = str(info.value)
    assert text.startswith("seg.nii.gz")
    assert "(24, 20, 11)" in text and "(24, 20, 12)" in text


def test_affine_mismatch_is_refused() -> None:
    shifted = oblique_lps_affine()
    shifted[2, 3] += 3.0
    image = _volume(ct_array(), oblique_lps_affine(), "ct.nii.gz")
    label = _volume(np.zeros(SHAPE, np.uint8), shifted, "seg.nii.gz")
    with pytest.raises(InputError, match="affine") as info:
        check_same_grid(image, label)
    assert "seg.nii.gz" in str(info.value) and "ct.nii.gz" in str(info.value)
    assert "3 mm" in str(info.value)


# --- atomic output --------------------------------------------------------------------------------


def test_save_leaves_only_the_target(tmp_path: Path) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    out = tmp_path / "out"
    save_volume(vol, out / "a.nii.gz")
    assert folder_entries(out) == ["a.nii.gz"]


def _disk_full_after_partial_write(img: nib.Nifti1Image, filename: str) -> None:
    Path(filename).write_bytes(b"\x1f\x8b partial")
    raise OSError(errno.ENOSPC, "No space left on device", filename)


def test_disk_full_leaves_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(nib, "save", _disk_full_after_partial_write)
    with pytest.raises(OutputError, match="disk full") as info:
        save_volume(vol, out / "a.nii.gz")
    assert str(out / "a.nii.gz") in str(info.value)
    assert folder_entries(out) == []


def test_failed_save_keeps_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    target = save_volume(vol, tmp_path / "out" / "a.nii.gz")
    before = target.read_bytes()
    monkeypatch.setattr(nib, "save", _disk_full_after_partial_write)
    with pytest.raises(OutputError):
        save_volume(vol, target, array=np.zeros(SHAPE, np.int16))
    assert target.read_bytes() == before
    assert folder_entries(target.parent) == ["a.nii.gz"]


def test_interrupted_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))

    def interrupted(img: nib.Nifti1Image, filename: str) -> None:
        Path(filename).write_bytes(b"half")
        raise KeyboardInterrupt

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(nib, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_volume(vol, out / "a.nii.gz")
    assert folder_entries(out) == []


def test_unwritable_folder_is_refused(tmp_path: Path, locked_dir: Path) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    with pytest.raises(OutputError, match="not writable") as info:
        save_volume(vol, locked_dir / "a.nii.gz")
    assert str(locked_dir) in str(info.value)
    assert folder_entries(locked_dir) == []


def test_output_path_through_a_file_is_refused(tmp_path: Path) -> None:
    """Not writable even for root: a path component is a regular file."""
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OutputError) as info:
        save_volume(vol, blocker / "sub" / "a.nii.gz")
    assert str(blocker / "sub") in str(info.value)
    assert blocker.read_text() == "a file, not a folder"


def test_written_files_have_the_usual_permissions(tmp_path: Path) -> None:
    vol = load_image(write_nifti(tmp_path / "ct.nii.gz", ct_array()))
    old = os.umask(0o022)
    try:
        target = save_volume(vol, tmp_path / "out" / "a.nii.gz")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o644, oct(mode)  # not mkstemp's 0o600: others in the group can read it
