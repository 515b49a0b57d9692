"""What a file is and what an output may be called: content hashes, case ids, output paths.

Every path tumorsynth writes is derived here from a validated case id and a variant number, under
the output folder; a path found in a record or a manifest is data to verify, never a place to
write. Sources are pinned by content (sha256), so a resume or a replay can tell a different CT that
carries the same file name.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from tumorsynth.errors import InputError

__all__ = [
    "CASE_ID_PATTERN",
    "NIFTI_ENDINGS",
    "case_id_from",
    "check_case_id",
    "check_folder_apart",
    "check_not_an_input",
    "check_outputs_not_inputs",
    "sha256_of",
    "source_bytes",
    "source_sha256",
    "split_case_name",
    "variant_files",
    "variant_name",
]

#: A case id is one path component of safe characters: letters, digits, ``_ - .``, starting
#: with a letter or digit (so no ``..``, no hidden files, no separators), at most 128 characters.
CASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")

#: The endings of a NIfTI file name, where a dataset does not name its own (nnU-Net's
#: ``file_ending`` in ``dataset.json``).
NIFTI_ENDINGS = (".nii.gz", ".nii")


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_of(p)[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(path: str | os.PathLike[str]) -> str:
    """Content hash of a source: a file's sha256, or for a folder (an AbdomenAtlas
    ``segmentations/`` folder, a DICOM series) the sha256 of its visible files' names and hashes,
    in sorted order, so renaming, adding or changing any of them changes the hash."""
    path = Path(path)
    if not path.is_dir():
        return sha256_of(path)
    digest = hashlib.sha256()
    for child in _visible_files(path):
        digest.update(f"{child.relative_to(path).as_posix()}\0{sha256_of(child)}\n".encode())
    return digest.hexdigest()


def source_bytes(path: str | os.PathLike[str]) -> int:
    """Size of a source in bytes: a file's, or the sum over the folder's files that
    :func:`source_sha256` hashes."""
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_size
    return sum(child.stat().st_size for child in _visible_files(path))


def _visible_files(folder: Path) -> Iterator[Path]:
    """The files under ``folder``, sorted, skipping hidden files and folders."""
    for child in sorted(folder.rglob("*")):
        if child.is_file() and not any(
            part.startswith(".") for part in child.relative_to(folder).parts
        ):
            yield child


def check_case_id(case_id: str, where: str = "--case-id") -> str:
    """Return ``case_id`` when it is one safe path component, else raise naming ``where``.

    Examples
    --------
    >>> check_case_id("liver_7")
    'liver_7'
    >>> check_case_id("../../x")
    Traceback (most recent call last):
    ...
    tumorsynth.errors.InputError: --case-id: expected one path component of letters, digits, '_', '-' or '.' (starting with a letter or digit, at most 128 characters), found '../../x'
    """
    if not isinstance(case_id, str) or not CASE_ID_PATTERN.fullmatch(case_id):
        raise InputError(
            where,
            "expected one path component of letters, digits, '_', '-' or '.' (starting with a "
            f"letter or digit, at most 128 characters), found {case_id!r}",
        )
    return case_id


def split_case_name(
    path: str | os.PathLike[str], file_ending: str | None = None, *, channel: bool = True
) -> tuple[str, int | None] | None:
    """(case id, nnU-Net channel) a file name encodes, or ``None`` when the name does not end in
    ``file_ending`` (``None``: ``.nii.gz`` or ``.nii``).

    With ``channel``, a 4-digit channel before the ending (``_0000``: the CT) is split off, as
    in an nnU-Net ``imagesTr`` folder; label files carry none (``channel=False``), so a case id
    may itself end in digits. The case id is not validated (see :func:`check_case_id`).

    Examples
    --------
    >>> split_case_name("imagesTr/liver_7_0001.nii.gz")
    ('liver_7', 1)
    >>> split_case_name("labelsTr/liver_7_0001.nii.gz", channel=False)
    ('liver_7_0001', None)
    >>> split_case_name("ct.nii"), split_case_name("ct.mha", ".nii.gz")
    (('ct', None), None)
    """
    name = Path(path).name
    ending = next(
        (e for e in ((file_ending,) if file_ending else NIFTI_ENDINGS) if name.endswith(e)), None
    )
    if ending is None:
        return None
    stem = name[: -len(ending)]
    found = re.fullmatch(r"(?P<case>.+)_(?P<channel>\d{4})", stem) if channel else None
    if found is None:
        return stem, None
    return found["case"], int(found["channel"])


def case_id_from(
    path: str | os.PathLike[str], file_ending: str | None = None, *, channel: bool = True
) -> str:
    """The case id a CT file name implies: ``/data/liver_7_0000.nii.gz`` -> ``liver_7``.

    The ending (``file_ending``, else ``.nii.gz`` or ``.nii``) and, with ``channel``, the CT's
    nnU-Net channel ``_0000`` are removed (by :func:`split_case_name`); another channel number
    stays part of the id, and a name without the ending is kept whole. The result is not
    validated; pass it through :func:`check_case_id` before using it in a path.

    Examples
    --------
    >>> case_id_from("/data/liver_7_0000.nii.gz")
    'liver_7'
    >>> case_id_from("BDMAP_001/ct.nii"), case_id_from("scan_0003.nii.gz")
    ('ct', 'scan_0003')
    >>> case_id_from("imagesTr/liver_7_0000.nii.gz", channel=False)  # the file's own name
    'liver_7_0000'
    """
    named = split_case_name(path, file_ending, channel=channel)
    if named is None:
        return Path(path).name
    case_id, number = named
    return case_id if number in (None, 0) else f"{case_id}_{number:04d}"


def variant_name(case_id: str, variant: int) -> str:
    """``liver_7``, 2 -> ``liver_7_syn2`` (the case id is validated)."""
    if isinstance(variant, bool) or not isinstance(variant, int) or variant < 0:
        raise InputError("variant", f"expected an integer >= 0, found {variant!r}")
    return f"{check_case_id(case_id, where='case id')}_syn{variant}"


def variant_files(case_id: str, variant: int) -> tuple[str, str]:
    """Image and label paths of a case variant, relative to the output folder (nnU-Net v2).

    Examples
    --------
    >>> variant_files("liver_7", 0)
    ('imagesTr/liver_7_syn0_0000.nii.gz', 'labelsTr/liver_7_syn0.nii.gz')
    """
    name = variant_name(case_id, variant)
    return f"imagesTr/{name}_0000.nii.gz", f"labelsTr/{name}.nii.gz"


def check_not_an_input(
    output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse an output path that resolves to one of ``inputs`` (see
    :func:`check_outputs_not_inputs`, which checks many outputs at the cost of one)."""
    check_outputs_not_inputs([output], inputs)


def check_outputs_not_inputs(
    outputs: Iterable[str | os.PathLike[str]], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Refuse the first of ``outputs`` that resolves to one of ``inputs`` (``None`` skipped).

    Symbolic links and hard links are seen through: two names of the same file are the same
    file. Each input is resolved and stat-ed once, so n outputs against m inputs cost n + m
    look-ups, not n * m (measured on 1000 files: 0.05 s instead of 20 s).
    """
    by_path: dict[Path, str | os.PathLike[str]] = {}
    by_inode: dict[tuple[int, int], str | os.PathLike[str]] = {}
    for source in inputs:
        if source is not None:
            by_path.setdefault(Path(source).resolve(), source)
            for found in _stat(Path(source)):
                by_inode.setdefault((found.st_dev, found.st_ino), source)
    for output in outputs:
        same = by_path.get(Path(output).resolve())
        for found in _stat(Path(output)) if same is None else []:
            same = by_inode.get((found.st_dev, found.st_ino))
        if same is not None:
            raise InputError(
                str(output),
                f"would overwrite the input {same}; inputs are never modified",
                fix="write to another --out",
            )


def _stat(path: Path) -> list[os.stat_result]:
    """``[path.stat()]`` (links followed), or ``[]`` when it does not exist."""
    try:
        return [path.stat()]
    except OSError:
        return []


def check_folder_apart(
    output: str | os.PathLike[str], source: str | os.PathLike[str], role: str
) -> None:
    """Refuse an output folder that is, lies inside, or holds the input folder ``source``
    (``role`` names it in the message, e.g. ``"--real dataset"``): outputs would mix with the
    inputs, and a later run could read them as inputs."""
    out, src = Path(output).resolve(), Path(source).resolve()
    if out == src:
        relation = "is"
    elif src in out.parents:
        relation = "lies inside"
    elif out in src.parents:
        relation = "holds"
    else:
        return
    raise InputError(
        str(output),
        f"{relation} the {role} {source}; outputs would mix with the inputs",
        fix="choose an --out outside the input folders",
    )
