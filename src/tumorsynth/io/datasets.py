"""Find the cases of a dataset folder and read AbdomenAtlas per-organ mask folders.

- **nnU-Net v2 raw**: ``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz`` (``imagesTs``/
  ``labelsTs`` for the test split); only channel 0, the CT, is used; ``file_ending`` is honoured.
- **MSD / Decathlon**: ``dataset.json`` with a ``"training"`` list of ``{"image", "label"}`` paths
  relative to the dataset folder (nnU-Net v1 folders, whose files carry ``_0000``, read too).
- **AbdomenAtlas**: ``<case>/ct.nii.gz`` + ``<case>/segmentations/<organ>.nii.gz``; the label is
  the ``segmentations`` folder, combined into one volume by :func:`read_abdomenatlas_label`.
- **Case lists** (``.txt``, ``.csv``, ``.tsv``, read by :func:`read_case_list`): one case per line,
  ``IMAGE LABEL [GROUP]`` separated by whitespace, commas or tabs, paths relative to the list file,
  ``#`` comments. Cases scattered over several folders, or other tools' outputs, come in this way.

Every missing or unexpected file is answered with :class:`~tumorsynth.errors.InputError` naming it.
Hidden entries (names starting with ``.``, such as macOS ``._liver_0.nii.gz`` files) are ignored.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tumorsynth.errors import InputError
from tumorsynth.io.identity import case_id_from, split_case_name
from tumorsynth.io.label_maps import LabelMap
from tumorsynth.io.nifti import Volume, check_same_grid, load_label

__all__ = [
    "LIST_SUFFIXES",
    "CaseRef",
    "DatasetLayout",
    "ListedCase",
    "check_distinct_inputs",
    "discover_cases",
    "is_case_list",
    "listed_file",
    "read_abdomenatlas_label",
    "read_case_label",
    "read_case_list",
]

#: File endings read as lists of ``IMAGE LABEL [GROUP]`` lines.
LIST_SUFFIXES = (".txt", ".csv", ".tsv")

#: Dataset layouts :func:`discover_cases` reads; ``"auto"`` picks one by looking at the folder.
DatasetLayout = Literal["auto", "nnunet", "msd", "abdomenatlas"]

_LOOKED_FOR = (
    'nnU-Net v2 (imagesTr/, labelsTr/), MSD (dataset.json with a "training" list) '
    "or AbdomenAtlas (<case>/ct.nii.gz)"
)


@dataclass(frozen=True)
class CaseRef:
    """Where one case of a dataset lives; nothing is read until the case is loaded.

    Attributes
    ----------
    case_id
        Case name: the nnU-Net case identifier, the MSD file name without ``.nii.gz``, or the
        AbdomenAtlas case folder name.
    image
        The CT (channel 0 for nnU-Net).
    label
        A label file, an AbdomenAtlas ``segmentations`` folder (read both with
        :func:`read_case_label`), or ``None`` for an unlabelled test case.
    """

    case_id: str
    image: Path
    label: Path | None


def check_distinct_inputs(
    image: str | os.PathLike[str], label: str | os.PathLike[str], *, flags: str = "--image/--label"
) -> None:
    """Refuse the same file (also through a symlink or hard link) given as image and label."""
    image, label = Path(image), Path(label)
    try:
        same = os.path.samefile(image, label)
    except OSError:  # one is missing: the loader names it
        same = image.resolve() == label.resolve()
    if same:
        raise InputError(
            flags,
            f"image {image} and label {label} are the same file"
            + (f" ({image.resolve()})" if image.resolve() != image.absolute() else ""),
            fix="pass the organ label map as --label",
        )


@dataclass(frozen=True)
class ListedCase:
    """One line of a case list: the case id (of the image's file name), its files, and its
    group (the third field, or the case id)."""

    case_id: str
    image: Path
    label: Path
    group: str


def is_case_list(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a case list (by its ending; it need not exist)."""
    return Path(path).suffix.lower() in LIST_SUFFIXES


def read_case_list(list_file: str | os.PathLike[str]) -> list[ListedCase]:
    """The cases of a list file: ``IMAGE LABEL [GROUP]`` per line, paths relative to the file.

    Raises
    ------
    InputError
        The list missing; a line without two or three fields (named ``FILE:LINE``); a file it
        names that does not exist; the same file as image and label.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.nii.gz", "a_seg.nii.gz"):
    ...     _ = (d / name).write_bytes(b"")
    >>> _ = (d / "cases.csv").write_text("# image, label" + chr(10) + "a.nii.gz, a_seg.nii.gz", encoding="utf-8")
    >>> [(c.case_id, c.label.name, c.group) for c in read_case_list(d / "cases.csv")]
    [('a', 'a_seg.nii.gz', 'a')]
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise InputError(str(list_file), "case list not found", fix="check the path")
    cases = []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        delimiter = "\t" if "\t" in line else "," if "," in line else None
        if delimiter:
            fields = [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]
        else:
            fields = line.split()
        where = f"{list_file}:{number}"
        if len(fields) not in (2, 3) or not all(fields):
            raise InputError(
                where,
                f"expected IMAGE LABEL [GROUP], found {len(fields)} field(s): {line!r}",
            )
        image, label = (listed_file(list_file, name, where) for name in fields[:2])
        check_distinct_inputs(image, label, flags=where)
        case = case_id_from(image)
        cases.append(ListedCase(case, image, label, fields[2] if len(fields) == 3 else case))
    return cases


def listed_file(listing: Path, name: str, where: str) -> Path:
    """``name`` (absolute, or relative to the folder of ``listing``), which must exist."""
    path = Path(name) if Path(name).is_absolute() else listing.parent / name
    if not path.is_file():
        raise InputError(where, f"names {name}, which does not exist ({path})")
    return path


def discover_cases(
    root: str | os.PathLike[str],
    *,
    layout: DatasetLayout = "auto",
    split: Literal["train", "test"] = "train",
) -> list[CaseRef]:
    """List the cases of a dataset folder, sorted by case id.

    Parameters
    ----------
    root
        Dataset folder (``DatasetNNN_Name``, ``Task03_Liver``, or the AbdomenAtlas folder that
        holds the case folders).
    layout
        ``"nnunet"``, ``"msd"``, ``"abdomenatlas"``, or ``"auto"`` to pick by looking at the folder
        (a ``"training"`` list in ``dataset.json`` means MSD, ``imagesTr``/``imagesTs`` nnU-Net,
        case folders holding ``ct.nii.gz`` AbdomenAtlas).
    split
        ``"train"``: every case needs a label. ``"test"``: nnU-Net ``imagesTs``/``labelsTs`` or the
        MSD ``"test"`` list; cases without a label get ``label=None``.

    Raises
    ------
    InputError
        Folder missing, empty or of no known layout; a label missing; a file where none is
        expected. The message names the file.

    Examples
    --------
    On an nnU-Net dataset on disk (not run as a doctest)::

        [case.case_id for case in discover_cases("Dataset003_Liver")]
        # ['liver_0', 'liver_1', 'liver_10']
    """
    readers = {"nnunet": _nnunet_cases, "msd": _msd_cases, "abdomenatlas": _abdomenatlas_cases}
    if layout != "auto" and layout not in readers:
        raise InputError("layout", f"expected 'auto' or one of {sorted(readers)}, found {layout!r}")
    if split not in ("train", "test"):
        raise InputError("split", f"expected 'train' or 'test', found {split!r}")
    root = Path(root)
    _require_dir(root, "a dataset folder", fix="check the path")
    cases = readers[_detect_layout(root) if layout == "auto" else layout](root, split)
    seen: dict[str, Path] = {}
    for case in cases:
        if case.case_id in seen:
            raise InputError(
                str(case.image),
                f"case id {case.case_id!r} is used twice (also by "
                f"{_rel(seen[case.case_id], root)})",
            )
        seen[case.case_id] = case.image
    return sorted(cases, key=lambda case: case.case_id)


def read_abdomenatlas_label(
    folder: str | os.PathLike[str], label_map: LabelMap, shape_like: Volume | None = None
) -> Volume:
    """Combine an AbdomenAtlas folder of per-organ binary masks into one label volume.

    Every ``<stem>.nii.gz`` that ``label_map.folder_files`` names and the folder holds is read;
    voxels > 0 get the organ's (or tumor's) first id in ``label_map``. Tumor masks are written
    last, so a tumor wins where it overlaps its organ. Other files in the folder are ignored.

    Parameters
    ----------
    folder
        The case's ``segmentations`` folder.
    label_map
        A map with ``folder_files``, such as the ``"abdomenatlas"`` preset.
    shape_like
        The case's image; when given, every mask must lie on its voxel grid.

    Returns
    -------
    Volume
        uint8 label ids (uint16 if an id exceeds 255) with the masks' affine and header;
        ``meta["label_files"]`` lists the stems read, in the order written.

    Raises
    ------
    InputError
        Folder missing or holding none of the known files (those found are listed); a mask off
        the grid of the others or of ``shape_like`` (named); a map without ``folder_files``.

    Examples
    --------
    On an AbdomenAtlas case on disk (not run as a doctest)::

        from tumorsynth.io.label_maps import PRESETS
        label = read_abdomenatlas_label("BDMAP_00000001/segmentations", PRESETS["abdomenatlas"])
        np.unique(label.array).tolist()  # liver 1, liver tumor 2, kidney 5
        # [0, 1, 2, 5]
    """
    folder = Path(folder)
    files = _folder_file_ids(label_map)
    _require_dir(folder, "a folder of per-organ masks")
    dtype = np.uint8 if max(label_id for _, label_id in files) < 256 else np.uint16
    base: tuple[Volume, np.ndarray] | None = None  # first mask read, combined ids
    read: list[str] = []
    for stem, label_id in files:
        path = folder / f"{stem}.nii.gz"
        if not path.is_file():
            continue
        mask = load_label(path)
        if shape_like is not None:
            check_same_grid(shape_like, mask)
        if base is None:
            base = (mask, np.zeros(mask.shape, dtype=dtype))
        else:
            check_same_grid(base[0], mask)  # masks agree with each other, not only the image
        base[1][mask.array > 0] = label_id
        read.append(stem)
    if base is None:
        known = sorted({f"{stem}.nii.gz" for stem, _ in files})
        raise InputError(
            str(folder),
            f"expected at least one of {', '.join(known)} "
            f"(label map {label_map.name!r}), found {_describe(_visible(folder))}",
            fix="is this an AbdomenAtlas segmentations folder?",
        )
    first, combined = base
    header = first.header.copy() if first.header is not None else None
    if header is not None:
        header.set_data_dtype(dtype)
        header.set_slope_inter(1.0, 0.0)
    return Volume(combined, first.affine, header, folder, {"label_files": read})


def read_case_label(
    ref_label: str | os.PathLike[str], label_map: LabelMap, image: Volume
) -> Volume:
    """Read a case's label, a file or an AbdomenAtlas folder, checked against the image's grid.

    Parameters
    ----------
    ref_label
        :attr:`CaseRef.label`: a NIfTI label file or a ``segmentations`` folder.
    label_map
        Used for folders only (see :func:`read_abdomenatlas_label`); a file keeps its own ids.
    image
        The case's CT; the label must share its shape and affine.

    Raises
    ------
    InputError
        Unreadable label, or a shape/affine that differs from the image's (naming the file).
    """
    ref_label = Path(ref_label)
    if ref_label.is_dir():
        return read_abdomenatlas_label(ref_label, label_map, shape_like=image)
    label = load_label(ref_label)
    check_same_grid(image, label)
    return label


# --- layouts -------------------------------------------------------------------------------------


def _detect_layout(root: Path) -> Literal["nnunet", "msd", "abdomenatlas"]:
    entries = _visible(root)
    if not entries:
        raise InputError(str(root), f"dataset folder is empty; expected {_LOOKED_FOR}")
    meta = _read_dataset_json(root)
    if meta is not None and isinstance(meta.get("training"), list):
        return "msd"
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return "nnunet"
    if any((entry / "ct.nii.gz").is_file() for entry in entries):
        return "abdomenatlas"
    fix = None
    if (root / "ct.nii.gz").is_file():
        fix = "this looks like one AbdomenAtlas case; pass the folder that holds the case folders"
    elif any((split_case_name(entry) or ("", None))[1] is not None for entry in entries):
        fix = "this looks like an imagesTr folder; pass the dataset folder above it"
    raise InputError(str(root), f"expected {_LOOKED_FOR}, found {_describe(entries)}", fix=fix)


def _nnunet_cases(root: Path, split: str) -> list[CaseRef]:
    meta = _read_dataset_json(root) or {}
    ending = meta.get("file_ending", ".nii.gz")
    if not isinstance(ending, str) or not ending.startswith("."):
        raise InputError(
            str(root / "dataset.json"), f"expected file_ending such as '.nii.gz', found {ending!r}"
        )
    suffix = "Tr" if split == "train" else "Ts"
    images_dir, labels_dir = root / f"images{suffix}", root / f"labels{suffix}"
    _require_dir(images_dir, f"the nnU-Net {split} image folder")
    if split == "train":
        _require_dir(
            labels_dir,
            "the nnU-Net training label folder",
            fix="training cases need labels; use split='test' for unlabelled images",
        )
    channels: dict[str, set[int]] = {}
    for path in _visible(images_dir):
        case_id, channel = split_case_name(path, ending) or ("", None)
        if channel is None or not path.is_file():
            raise InputError(
                str(path),
                f"unexpected entry in images{suffix}/: expected files "
                f"named <case>_<4-digit channel>{ending}",
                fix="move it out of the folder, or set file_ending in dataset.json",
            )
        channels.setdefault(case_id, set()).add(channel)
    if not channels:
        raise InputError(str(images_dir), f"expected <case>_0000{ending} images, found none")
    labels: dict[str, Path] = {}
    for path in _visible(labels_dir) if labels_dir.is_dir() else []:
        named = split_case_name(path, ending, channel=False)
        if named is None or not path.is_file():
            raise InputError(
                str(path),
                f"unexpected entry in labels{suffix}/: expected files named <case>{ending}",
                fix="move it out of the folder",
            )
        case_id = named[0]
        if case_id not in channels:
            raise InputError(str(path), f"label has no image images{suffix}/{case_id}_0000{ending}")
        labels[case_id] = path
    cases = []
    for case_id, found in channels.items():
        image = images_dir / f"{case_id}_0000{ending}"
        if 0 not in found:
            raise InputError(
                str(image),
                f"channel 0 (CT) of case {case_id!r} does not exist; "
                f"found channel(s) {sorted(found)}",
            )
        label = labels.get(case_id)
        if label is None and split == "train":
            raise InputError(
                str(labels_dir / f"{case_id}{ending}"),
                f"label file for image {_rel(image, root)} does not exist",
            )
        cases.append(CaseRef(case_id, image, label))
    return cases


def _msd_cases(root: Path, split: str) -> list[CaseRef]:
    json_path = root / "dataset.json"
    meta = _read_dataset_json(root)
    if meta is None:
        raise InputError(str(json_path), "the MSD layout needs dataset.json; it does not exist")
    key = "training" if split == "train" else "test"
    entries = meta.get(key)
    if not isinstance(entries, list):
        found = "no such key" if entries is None else type(entries).__name__
        raise InputError(str(json_path), f"expected a {key!r} list, found {found}")
    cases = []
    for index, entry in enumerate(entries):
        where = f"dataset.json {key}[{index}]"
        if split == "test" and isinstance(entry, str):
            entry = {"image": entry}
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("image"), str)
            or not isinstance(entry.get("label", ""), str)
            or (split == "train" and "label" not in entry)
        ):
            raise InputError(
                str(json_path),
                f'{key}[{index}]: expected {{"image": "./imagesTr/'
                f'x.nii.gz", "label": "./labelsTr/x.nii.gz"}}, found '
                f"{str(entry)[:120]}",
            )
        listed = root / entry["image"]
        image = listed if listed.is_file() else _with_channel0(listed)
        if not image.is_file():
            raise InputError(str(listed), f"image listed in {where} does not exist")
        label = root / entry["label"] if "label" in entry else None
        if label is not None and not label.is_file():
            raise InputError(
                str(label),
                f"label file for image {_rel(image, root)} (listed in {where}) does not exist",
            )
        cases.append(CaseRef(case_id_from(listed, channel=False), image, label))
    if not cases:
        raise InputError(str(json_path), f"the {key!r} list is empty; expected at least one case")
    return cases


def _abdomenatlas_cases(root: Path, split: str) -> list[CaseRef]:
    cases = []
    for folder in _visible(root):
        if not folder.is_dir():
            continue  # metadata (csv, README) beside the case folders
        image = folder / "ct.nii.gz"
        if not image.is_file():
            raise InputError(
                str(image),
                f"CT of AbdomenAtlas case {folder.name!r} does not exist",
                fix="every case folder needs ct.nii.gz; move other folders out",
            )
        label = folder / "segmentations"
        if not label.is_dir() and split == "train":
            raise InputError(
                str(label), f"mask folder for image {_rel(image, root)} does not exist"
            )
        cases.append(CaseRef(folder.name, image, label if label.is_dir() else None))
    if not cases:
        raise InputError(
            str(root),
            f"expected AbdomenAtlas case folders (<case>/ct.nii.gz), "
            f"found {_describe(_visible(root))}",
        )
    return cases


# --- helpers -------------------------------------------------------------------------------------


def _folder_file_ids(label_map: LabelMap) -> list[tuple[str, int]]:
    """(file stem, label id) pairs, organs first and tumors last so that tumors win overlaps."""
    if not label_map.folder_files:
        raise InputError(
            f"label map {label_map.name!r}",
            "names no per-organ mask files, so a segmentations folder cannot be read",
            fix="use the 'abdomenatlas' preset",
        )
    organs: list[tuple[str, int]] = []
    tumors: list[tuple[str, int]] = []
    for name, stems in label_map.folder_files.items():
        ids = label_map.organs.get(name) or label_map.tumors.get(name)
        if not ids:
            raise InputError(
                f"label map {label_map.name!r}",
                f"lists mask files for {name!r} but gives it no label id",
                fix=f"add an id for {name!r}",
            )
        (tumors if name in label_map.tumors else organs).extend((stem, ids[0]) for stem in stems)
    return organs + tumors


def _read_dataset_json(root: Path) -> dict[str, Any] | None:
    path = root / "dataset.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            str(path), f"expected a JSON object, found unreadable JSON ({exc})"
        ) from exc
    if not isinstance(meta, dict):
        raise InputError(str(path), f"expected a JSON object, found {type(meta).__name__}")
    return meta


def _with_channel0(path: Path) -> Path:
    """nnU-Net v1 lists ``imagesTr/x.nii.gz`` for the file ``imagesTr/x_0000.nii.gz``."""
    stem = case_id_from(path, channel=False)
    return path.with_name(f"{stem}_0000{path.name[len(stem) :]}")


def _require_dir(path: Path, expected: str, fix: str | None = None) -> None:
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise InputError(str(path), f"expected {expected}, found {found}", fix=fix)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _describe(entries: list[Path], limit: int = 8) -> str:
    if not entries:
        return "nothing"
    names = [p.name + ("/" if p.is_dir() else "") for p in entries[:limit]]
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(names) + more


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
