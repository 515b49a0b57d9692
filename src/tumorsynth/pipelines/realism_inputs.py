"""Where the tumors of a realism study come from: datasets, our manifests, or lists of pairs.

A *source* is one path:

- a dataset folder in any layout :func:`~tumorsynth.io.datasets.discover_cases` reads (nnU-Net v2,
  MSD, AbdomenAtlas): every labelled case;
- a ``manifest.jsonl`` written by ``tumorsynth synthesize``: every synthesized case it names. Only
  the tumors tumorsynth added are analysed; tumors that were already in the source scan (a
  host-matched design puts synthetic tumors into the very scans that hold real ones) are left out
  by reading the record's source label;
- a list file (``.txt``, ``.csv``, ``.tsv``): one case per line, ``IMAGE LABEL [GROUP]``
  separated by whitespace, commas or tabs, paths relative to the list file, ``#`` comments.
  Other tools' outputs come in this way.

Each case gets a *group*: the scan it was made from. A real scan and the synthetic cases made from
it share the group (the case id of the source CT's file name), so cross-validation never trains on
one and tests on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import (
    LIST_SUFFIXES,
    discover_cases,
    is_case_list,
    listed_file,
    read_case_list,
)
from tumorsynth.io.identity import case_id_from, check_folder_apart
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map
from tumorsynth.io.records import check_record, read_numbered_manifest
from tumorsynth.realism.features import CaseInput

__all__ = ["cases_from_sources", "check_out_apart"]


def cases_from_sources(
    sources: Sequence[str | Path],
    *,
    source: str,
    label_map: str | LabelMap | None,
    organs: Sequence[str] = (),
    flag: str = "--real",
) -> list[CaseInput]:
    """Every case of ``sources`` as a :class:`~tumorsynth.realism.features.CaseInput`.

    Parameters
    ----------
    sources
        Dataset folders, manifests (``*.jsonl``) or list files.
    source
        ``"real"`` or ``"synthetic"``.
    label_map
        Label map of the label files; required for datasets and lists, optional for our
        manifests (their outputs use tumorsynth's output labels).
    organs
        Organs whose tumors are analysed (empty: every organ of the map with a tumor label).
    flag
        The command-line flag the sources came from (named in errors).

    Raises
    ------
    InputError
        A source that is missing or of no known kind, a list line that is not ``IMAGE LABEL
        [GROUP]``, a file named there that does not exist, no label map where one is needed,
        the same case twice. Each message names the file.
    """
    cases: list[CaseInput] = []
    for entry in sources:
        path = Path(entry)
        if path.is_dir():
            cases += _dataset_cases(path, source, _required_map(label_map, flag, path), organs)
        elif path.suffix == ".jsonl":
            cases += _manifest_cases(path, source, label_map, organs)
        elif is_case_list(path):
            cases += _list_cases(path, source, _required_map(label_map, flag, path), organs)
        elif path.exists():
            raise InputError(
                str(path),
                "expected a dataset folder, a manifest.jsonl of tumorsynth or a list file "
                f"({', '.join(LIST_SUFFIXES)}) of IMAGE LABEL lines, found a file of another kind",
                fix=f"pass one of those to {flag}",
            )
        else:
            raise InputError(str(path), "does not exist", fix=f"check the path given to {flag}")
    seen: dict[tuple[Path, Path], str] = {}
    for case in cases:
        key = (case.image.resolve(), case.label.resolve())
        if key in seen:
            raise InputError(
                str(case.image),
                f"the case ({case.image}, {case.label}) is listed twice (also as {seen[key]!r})",
                fix=f"give each case once to {flag}",
            )
        seen[key] = case.case
    if not cases:
        raise InputError(flag, f"found no cases in {', '.join(map(str, sources))}")
    return cases


def check_out_apart(out: str | Path, sources: Sequence[str | Path], flag: str) -> None:
    """Refuse an ``--out`` that is, holds or lies inside an input dataset folder or run folder
    (a manifest's). A list file's folder is not an input: its cases may lie anywhere."""
    for entry in sources:
        path = Path(entry)
        if path.is_dir():
            check_folder_apart(out, path, f"{flag} input")
        elif path.suffix == ".jsonl":
            check_folder_apart(out, path.parent, f"{flag} input")


def _required_map(label_map: str | LabelMap | None, flag: str, path: Path) -> LabelMap:
    if label_map is None or label_map == "":
        raise InputError(
            str(path),
            "needs a label map: which label ids are which organ and tumor",
            fix=f"pass {flag}-label-map (a preset such as lits or msd, or a JSON file)",
        )
    return label_map if isinstance(label_map, LabelMap) else resolve_label_map(label_map)


def _dataset_cases(
    root: Path, source: str, label_map: LabelMap, organs: Sequence[str]
) -> list[CaseInput]:
    out = []
    for ref in discover_cases(root):
        assert ref.label is not None  # split="train": discover_cases requires every label
        out.append(
            CaseInput(
                ref.case_id, ref.image, ref.label, label_map, source, ref.case_id, tuple(organs)
            )
        )
    return out


def _manifest_cases(
    manifest: Path, source: str, label_map: str | LabelMap | None, organs: Sequence[str]
) -> list[CaseInput]:
    out_map = (
        OUTPUT_LABELS
        if label_map is None or label_map == ""
        else label_map
        if isinstance(label_map, LabelMap)
        else resolve_label_map(label_map)
    )
    cases: dict[tuple[str, str], CaseInput] = {}
    for where, record in read_numbered_manifest(manifest):
        if not record.image_path or not record.label_path:
            raise InputError(
                where,
                "the record names no output image_path/label_path (a record of a single-image "
                "run without --out?)",
                fix="pass the synthesized image and label in a list file instead",
            )
        check_record(record, where, out_map)  # its paths are the derived ones, never ../
        key = (record.image_path, record.label_path)
        if key in cases:  # another tumor of the same case: its organ is measured too
            if not organs and record.organ not in cases[key].organs:
                cases[key] = replace(cases[key], organs=(*cases[key].organs, record.organ))
            continue
        image = listed_file(manifest, record.image_path, where)
        label = listed_file(manifest, record.label_path, where)
        ignore = ignore_map = None
        if record.source_label and record.label_map:
            ignore = Path(record.source_label)
            ignore_map = resolve_label_map(dict(record.label_map))
        group = case_id_from(record.source_image) if record.source_image else record.case_id
        cases[key] = CaseInput(
            case_id_from(image, channel=True),
            image,
            label,
            out_map,
            source,
            group,
            tuple(organs) or (record.organ,),
            ignore_label=ignore,
            ignore_label_map=ignore_map,
        )
    return list(cases.values())


def _list_cases(
    list_file: Path, source: str, label_map: LabelMap, organs: Sequence[str]
) -> list[CaseInput]:
    return [
        CaseInput(c.case_id, c.image, c.label, label_map, source, c.group, tuple(organs))
        for c in read_case_list(list_file)
    ]
