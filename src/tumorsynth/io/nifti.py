"""Read and write CT volumes and label maps, keeping the input's affine, header and dtype.

Validation happens here, at the boundary: a file that cannot be read, is not 3-D, holds NaN/Inf,
or does not look like CT is answered with :class:`~tumorsynth.errors.InputError` (or a warning for
unusual intensities) naming the file. DICOM series are read through SimpleITK (optional extra).
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path

__all__ = [
    "RAS_LABELS",
    "CTIntensityWarning",
    "Volume",
    "check_same_grid",
    "load_image",
    "load_label",
    "load_volume",
    "save_volume",
    "spacing_from_affine",
]


#: nibabel's RAS+ axis convention (for MONAI's Orientation, whose default is changing).
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class CTIntensityWarning(UserWarning):
    """The image's intensities do not look like Hounsfield units."""


@dataclass
class Volume:
    """A 3-D array with its voxel-to-world affine (mm) and the header it came with.

    ``array`` keeps the dtype stored on disk (int16 CT stays int16); axis order is the file's
    voxel order (i, j, k). ``spacing_mm`` is the voxel size along each of those axes.
    """

    array: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return spacing_from_affine(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<array>"


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each voxel axis (column norms of the affine's 3x3 part)."""
    sizes = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


def load_volume(path: str | os.PathLike[str], *, role: str = "image") -> Volume:
    """Read a 3-D NIfTI (or, with SimpleITK, a DICOM folder) without changing its dtype.

    Parameters
    ----------
    path
        ``.nii``/``.nii.gz`` file, or a folder of DICOM files.
    role
        ``"image"`` or ``"label"``; used in messages and to pick checks.

    Raises
    ------
    InputError
        Unreadable or truncated file, not 3-D, zero-sized spacing.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), f"{role} file does not exist", fix="check the path")
    if path.is_dir():
        return _load_dicom_series(path, role)
    try:
        img = nib.load(str(path))
        array, header = _read_hu(img)  # type: ignore[arg-type]
    except (
        OSError,
        EOFError,
        ValueError,
        zlib.error,
        gzip.BadGzipFile,
        nib.filebasedimages.ImageFileError,
    ) as exc:
        raise InputError(
            str(path),
            f"cannot read {role} as NIfTI: expected a complete .nii or "
            f".nii.gz file, found {type(exc).__name__}: {exc}",
            fix="the file may be truncated or not a NIfTI; re-export it",
        ) from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(str(path), f"expected a NIfTI {role}, found {type(img).__name__}")
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(
            str(path),
            f"expected a 3-D {role}, found {array.ndim}-D shape {tuple(array.shape)}",
            fix="split 4-D series into 3-D volumes first" if array.ndim > 3 else None,
        )
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or min(spacing_from_affine(affine)) <= 0:
        raise InputError(
            str(path), f"affine is not a valid voxel-to-mm transform: {affine.tolist()}"
        )
    return Volume(array, affine, header, path)


def _read_hu(img: nib.Nifti1Image) -> tuple[np.ndarray, nib.Nifti1Header]:
    """Voxel values with the file's scaling applied, without needless float64.

    Integer files with integral slope/intercept (e.g. uint16 with intercept -1024) give exact
    int16 (or int32) values and a header that says so, so they are written back as integers.
    """
    header = img.header.copy()
    slope, inter = img.dataobj.slope, img.dataobj.inter  # type: ignore[attr-defined]
    raw_dtype = img.get_data_dtype()
    if (slope, inter) == (1.0, 0.0) or not np.issubdtype(raw_dtype, np.integer):
        return np.asanyarray(img.dataobj), header
    raw = np.asanyarray(img.dataobj.get_unscaled())  # type: ignore[attr-defined]
    if float(slope).is_integer() and float(inter).is_integer():
        values = raw.astype(np.int32) * np.int32(slope) + np.int32(inter)
        lo, hi = int(values.min(initial=0)), int(values.max(initial=0))
        info = np.iinfo(np.int16)
        target = np.int16 if info.min <= lo and hi <= info.max else np.int32
        array = values.astype(target, copy=False)
    else:
        array = raw.astype(np.float32) * np.float32(slope) + np.float32(inter)
    header.set_data_dtype(array.dtype)
    header.set_slope_inter(1.0, 0.0)
    return array, header


def load_image(path: str | os.PathLike[str]) -> Volume:
    """Load a CT image: 3-D, finite, and (with a warning otherwise) in Hounsfield units."""
    vol = load_volume(path, role="image")
    check_ct_intensities(vol.array, vol.name)
    return vol


def load_label(path: str | os.PathLike[str]) -> Volume:
    """Load a label map: 3-D, integer valued (float files holding integers are converted)."""
    vol = load_volume(path, role="label")
    vol.array = as_label_array(vol.array, vol.name)
    return vol


def as_label_array(array: np.ndarray, where: str) -> np.ndarray:
    """Return ``array`` as the smallest unsigned integer type that holds its labels."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise InputError(where, "expected integer label ids, found NaN or Inf values")
        rounded = np.rint(array)
        if np.any(rounded != array):
            raise InputError(
                where,
                "expected integer label ids, found fractional values "
                f"(e.g. {array[rounded != array].flat[0]!r})",
                fix="is this an image passed as --label?",
            )
        array = rounded
    elif not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise InputError(where, f"expected integer label ids, found dtype {array.dtype}")
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo < 0:
        raise InputError(where, f"expected label ids >= 0, found {lo}")
    target = np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.uint32
    return array if array.dtype == target else array.astype(target)


def check_ct_intensities(array: np.ndarray, where: str) -> None:
    """Refuse NaN/Inf; warn when intensities do not look like HU (e.g. normalized to [0, 1])."""
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise InputError(
                where,
                f"expected finite CT intensities, found {bad} NaN/Inf voxels",
                fix="fill or crop them before synthesis",
            )
    if not (np.issubdtype(array.dtype, np.number)):
        raise InputError(where, f"expected a numeric CT image, found dtype {array.dtype}")
    sample = array[::4, ::4, ::2] if min(array.shape) > 8 else array
    lo, hi = float(np.percentile(sample, 0.5)), float(np.percentile(sample, 99.5))
    if hi - lo < 300 or lo > -300 or hi < 50 or hi > 5000:
        warnings.warn(
            f"{where}: intensities do not look like Hounsfield units (0.5-99.5 percentile "
            f"{lo:.1f} to {hi:.1f}; CT has air near -1000 and soft tissue 0-200 HU). Organ contrast "
            "is set in HU, so synthesized tumors will be wrong if the scan is normalized; apply "
            "synthesis before intensity scaling.",
            CTIntensityWarning,
            stacklevel=3,
        )


def check_same_grid(image: Volume, label: Volume, *, atol_mm: float = 1e-3) -> None:
    """Refuse an image/label pair whose shapes or affines differ."""
    if image.shape != label.shape:
        raise InputError(
            label.name,
            f"shape {label.shape} does not match image {image.shape} ({image.name})",
            fix="the label must be on the image's voxel grid",
        )
    diff = float(np.max(np.abs(image.affine - label.affine)))
    if diff > atol_mm:
        raise InputError(
            label.name,
            f"affine differs from the image's ({image.name}) by up to "
            f"{diff:.4g} mm; expected the same voxel grid",
            fix="resample the label onto the image, or fix its header",
        )


def save_volume(
    volume: Volume,
    path: str | os.PathLike[str],
    *,
    array: np.ndarray | None = None,
    description: str | None = None,
) -> Path:
    """Write ``array`` (default ``volume.array``) with the volume's affine and header, atomically.

    The header's data type and scaling are kept when the array fits them, so an int16 CT is
    written as int16 and opens in any viewer exactly like the input.
    """
    path = Path(path)
    data = volume.array if array is None else array
    header = volume.header.copy() if volume.header is not None else None
    if header is not None and header.get_data_dtype() != data.dtype:
        slope, inter = header.get_slope_inter()
        unscaled = slope in (None, 1.0) and inter in (None, 0.0)
        if not (unscaled and np.can_cast(data.dtype, header.get_data_dtype(), "same_kind")):
            header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, volume.affine, header=header)
    if description is not None:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    if header is not None and volume.header is not None:
        source = volume.header
        qform_code, sform_code = int(source["qform_code"]), int(source["sform_code"])
        if np.allclose(source.get_best_affine(), volume.affine, atol=1e-5):
            img.set_qform(source.get_qform(), code=qform_code)  # exactly as read
            img.set_sform(source.get_sform(), code=sform_code)
        else:  # the volume's affine was changed (e.g. a crop moved the origin): it wins
            img.set_qform(volume.affine, code=qform_code)
            img.set_sform(volume.affine, code=sform_code or 2)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path


#: Slice gaps may differ from the series' median by this fraction before a series is refused.
SLICE_GAP_TOLERANCE = 0.1


def _check_slice_spacing(reader: Any, image: Any, files: tuple[str, ...], folder: Path) -> None:
    """Refuse a series whose slices are not evenly spaced (a missing or duplicated slice):
    SimpleITK would stack them at the average spacing and shift every organ below the gap."""
    if len(files) < 3:
        return
    try:
        points = np.array(
            [
                [float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")]
                for i in range(len(files))
            ]
        )
    except (RuntimeError, ValueError):
        return  # no ImagePositionPatient: nothing to check against
    normal = np.array(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    positions = points @ normal
    gaps = np.diff(positions)
    expected = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - expected) > SLICE_GAP_TOLERANCE * abs(expected) + 1e-3)
    if expected == 0 or bad.size:
        i = int(bad[0]) if bad.size else 0
        raise InputError(
            str(folder),
            "expected evenly spaced slices, found a gap of "
            f"{gaps[i]:.3g} mm between {Path(files[i]).name} (at {positions[i]:.2f} mm) and "
            f"{Path(files[i + 1]).name} (at {positions[i + 1]:.2f} mm) where the series' "
            f"spacing is {expected:.3g} mm"
            + (f" ({bad.size} uneven gaps in all)" if bad.size > 1 else "")
            + (": a slice is missing" if gaps[i] > 1.5 * expected > 0 else ""),
            fix="export the complete series (or resample it to even spacing) first",
        )


def _load_dicom_series(folder: Path, role: str) -> Volume:
    try:
        import SimpleITK as sitk  # optional extra: tumorsynth[dicom]
    except ImportError as exc:
        raise InputError(
            str(folder),
            f"{role} is a folder; reading DICOM needs SimpleITK",
            fix="pip install 'tumorsynth[dicom]'",
        ) from exc
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        raise InputError(
            str(folder),
            "expected a DICOM series or a NIfTI file, found a folder without DICOM files",
        )
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # slice positions, to find gaps
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(str(folder), f"cannot read DICOM series: {exc}") from exc
    _check_slice_spacing(reader, image, files, folder)
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # SimpleITK is (k, j, i)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = lps_to_ras @ np.array(image.GetOrigin(), dtype=float)
    header = nib.Nifti1Header()
    header.set_data_dtype(array.dtype)
    return Volume(array, affine, header, folder)
