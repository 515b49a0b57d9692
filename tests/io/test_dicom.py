"""DICOM series in, through SimpleITK (the ``dicom`` extra)."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from shared_data import require_module

from tumorsynth.errors import InputError
from tumorsynth.io import load_volume

sitk = require_module("SimpleITK")


def write_series(
    folder: Path, array_kji: np.ndarray, spacing=(0.8, 0.7, 2.0), origin=(10.0, -20.0, 5.0)
):
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    folder.mkdir()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        sl.SetMetaData(
            "0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k)))
        )
        sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        sl.SetMetaData("0020|0013", str(k))
        sl.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.42")  # one series
        sl.SetMetaData("0020|000d", "1.2.826.0.1.3680043.2.1125.1.41")
        sl.SetMetaData("0008|0060", "CT")
        sl.SetMetaData("0028|0030", f"{spacing[1]}\\{spacing[0]}")
        sl.SetMetaData("0018|0050", str(spacing[2]))
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_reads_with_values_spacing_and_orientation(tmp_path):
    rng = np.random.default_rng(0)
    kji = rng.integers(-1000, 1000, size=(6, 12, 10)).astype(np.int16)
    write_series(tmp_path / "series", kji)
    vol = load_volume(tmp_path / "series")
    assert vol.shape == (10, 12, 6)
    assert np.array_equal(vol.array, kji.transpose(2, 1, 0))
    assert vol.spacing_mm == pytest.approx((0.8, 0.7, 2.0))
    assert nib.aff2axcodes(vol.affine) == ("L", "P", "S")  # DICOM is LPS
    assert np.allclose(vol.affine @ [0, 0, 0, 1], [-10.0, 20.0, 5.0, 1.0])


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="DICOM"):
        load_volume(tmp_path / "empty")
