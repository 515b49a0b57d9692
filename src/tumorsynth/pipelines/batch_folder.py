"""The state of a batch's output folder: which run it holds, from which sources, and that its
files are exactly its manifest's.

A batch folder is trusted only as far as these checks go, all made under the folder's lock
(:mod:`tumorsynth.io.run_lock`) before the first case starts:

- ``run.json`` holds the settings and the tumorsynth version, written before any case is
  synthesized; a resume with other settings is refused, naming each setting that differs.
- Every record pins its sources by content (sha256, and their size in ``extra["source_bytes"]``);
  a resume refuses a done case whose source changed since (:func:`check_sources`).
- Files of variants the manifest does not hold (a worker killed mid-case, a full disk) and the
  temporary ``.part`` files of a killed writer are removed (:func:`remove_unrecorded`), so
  ``dataset.json``, which counts the manifest, counts exactly the cases on disk; no input may lie
  where that clean-up looks (:func:`check_sources_outside`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tumorsynth import __version__
from tumorsynth.errors import InputError
from tumorsynth.io.atomic import atomic_path, is_partial_file
from tumorsynth.io.datasets import CaseRef
from tumorsynth.io.identity import source_bytes, source_sha256, variant_name
from tumorsynth.io.records import MANIFEST_NAME, TumorRecord, read_manifest, rewrite_manifest

__all__ = [
    "RUN_NAME",
    "check_new_run_folder",
    "check_run_settings",
    "check_sources",
    "check_sources_outside",
    "complete_records",
    "remove_unrecorded",
    "settings_differences",
    "warn_if_other_version",
    "write_run_settings",
]

RUN_NAME = "run.json"
#: The folders a batch writes variants into, with the suffix after each variant's name
#: (:func:`~tumorsynth.io.identity.variant_name`, ``<case>_syn<k>``).
_VARIANT_SUFFIXES = {"imagesTr": "_0000.nii.gz", "labelsTr": ".nii.gz", "previews": ".png"}
_VARIANT_NAME = re.compile(r".+_syn\d+")


def check_new_run_folder(out: Path) -> None:
    """Refuse to start a run in a folder that holds another dataset's or tool's outputs.

    A folder without ``run.json`` is not one of our runs: if it already holds what a batch
    writes (``imagesTr``, ``labelsTr``, ``previews``, a manifest, ``dataset.json``), a new run
    would mix its files with those, and resuming could not tell ours from theirs (the orphan
    clean-up of :func:`remove_unrecorded` must only ever see files a run of ours wrote).
    """
    found = [
        name
        for name in (*_VARIANT_SUFFIXES, MANIFEST_NAME, "dataset.json")
        if (out / name).exists()
    ]
    if found:
        raise InputError(
            str(out),
            f"expected a new or empty output folder (or one of our runs, with its {RUN_NAME}), "
            f"found {', '.join(found)} without {RUN_NAME}: another dataset's files are here and "
            "a new run would mix with them",
            fix="choose a new --out",
        )


def check_run_settings(out: Path, settings: Mapping[str, Any]) -> bool:
    """Refuse a folder that holds a run with other settings; return whether it holds one.

    Raises
    ------
    InputError
        ``run.json`` is unreadable or its settings differ; the message lists each setting that
        differs (``seed: 7 in run.json, 8 now``).
    """
    path = out / RUN_NAME
    if not path.exists():
        return False
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        recorded = found["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            str(path),
            f"expected the settings of the run in this folder, found an unreadable file ({exc}); "
            "resuming without them could mix two runs",
            fix="use another --out",
        ) from exc
    differences = settings_differences(recorded, settings)
    if differences:
        raise InputError(
            str(path),
            "this folder holds a run with other settings: "
            + "; ".join(differences)
            + "; resuming it would mix two runs",
            fix="rerun with the folder's settings, or use another --out",
        )
    warn_if_other_version(path, found.get("tumorsynth_version"), stacklevel=3)
    return True


def warn_if_other_version(
    path: Path, recorded: object, *, what: str = "run", stacklevel: int = 2
) -> None:
    """Warn when a folder being resumed was started by another tumorsynth version.

    ``path`` is the file that records it (``run.json``), ``what`` names the run in the message;
    ``stacklevel`` counts from the caller, as :func:`warnings.warn` does.
    """
    if recorded != __version__:
        warnings.warn(
            f"{path}: {what} was started by tumorsynth {recorded}, resuming with {__version__}",
            stacklevel=stacklevel + 1,
        )


def write_run_settings(out: Path, settings: Mapping[str, Any]) -> Path:
    """Write ``run.json`` (settings and tumorsynth version) atomically."""
    path = out / RUN_NAME
    data = {"settings": settings, "tumorsynth_version": __version__}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def settings_differences(recorded: Any, wanted: Any, *, kept_in: str = "run.json") -> list[str]:
    """Each setting that differs, by its dotted key (``kept_in``: where ``recorded`` was read).

    Examples
    --------
    >>> settings_differences({"seed": 7, "requests": [{"size": "small"}]},
    ...                      {"seed": 8, "requests": [{"size": "tiny"}]})
    ["requests[0].size: 'small' in run.json, 'tiny' now", 'seed: 7 in run.json, 8 now']
    """
    old, new = dict(_flatten(recorded)), dict(_flatten(wanted))
    missing = object()
    lines = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            then = "absent" if before is missing else repr(before)
            now = "absent" if after is missing else repr(after)
            lines.append(f"{key or 'settings'}: {then} in {kept_in}, {now} now")
    return lines


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key in value:
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and value:
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, list(value) if isinstance(value, tuple) else value


def complete_records(manifest: Path, *, repair: bool = True) -> list[TumorRecord]:
    """The manifest's records of whole variants (all of a variant's tumors are listed).

    A variant cut off by a crash is dropped from the manifest (atomically, when ``repair``) so
    that it is redone without duplicates.
    """
    if not manifest.exists():
        return []
    records = read_manifest(manifest)
    groups: dict[tuple[str, int], list[TumorRecord]] = {}
    for record in records:
        groups.setdefault((record.case_id, record.variant), []).append(record)
    complete = {
        key for key, group in groups.items() if group[0].variant_tumors in (None, len(group))
    }
    kept = [r for r in records if (r.case_id, r.variant) in complete]
    if repair and (len(kept) < len(records) or manifest.read_bytes()[-1:] not in (b"", b"\n")):
        rewrite_manifest(manifest, kept)
    return kept


def remove_unrecorded(out: Path, records: Sequence[TumorRecord]) -> list[Path]:
    """Remove variant files the manifest does not list and every ``.part`` temporary file.

    Only names a batch writes are touched (``<case>_syn<k>`` in ``imagesTr``, ``labelsTr``,
    ``previews``, and atomic-write temporaries there and in the folder itself); call it only
    while holding the folder's lock, when no writer is running.
    """
    keep = {variant_name(record.case_id, record.variant) for record in records}
    removed = []
    for sub in ("", *_VARIANT_SUFFIXES):
        folder = out / sub
        if not folder.is_dir():
            continue
        suffix = _VARIANT_SUFFIXES.get(sub)
        for entry in os.scandir(folder):
            if not entry.is_file(follow_symlinks=False) and not entry.is_symlink():
                continue
            name = entry.name.removesuffix(suffix) if suffix else entry.name
            orphan = name != entry.name and _VARIANT_NAME.fullmatch(name) and name not in keep
            if orphan or is_partial_file(entry.name):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def check_sources_outside(out: Path, cases: Sequence[CaseRef]) -> None:
    """Refuse cases whose image or label lies in a folder the batch writes and cleans up.

    :func:`remove_unrecorded` deletes the ``<case>_syn<k>`` files there that the manifest does
    not list, so an input in ``out/imagesTr`` (an earlier run's output fed back in, or ``out``
    the input dataset itself) could be deleted, and outputs would mix with inputs. The command
    line refuses most of these earlier (``--out`` inside ``--dataset``, a folder with another
    dataset's files); this is the check for every caller, resumed folders included.
    """
    written = {(out / sub).resolve(): sub for sub in _VARIANT_SUFFIXES}
    for case in cases:
        for source in (case.image, case.label):
            sub = written.get(Path(source).resolve().parent) if source is not None else None
            if sub is not None:
                raise InputError(
                    str(out),
                    f"holds the input {source} in {sub}/, where a run writes its outputs and "
                    "removes the files its manifest does not list; outputs would mix with inputs",
                    fix="choose another --out",
                )


def check_sources(
    cases: Sequence[CaseRef], records: Sequence[TumorRecord], *, threads: int = 1
) -> None:
    """Refuse to resume when the source of a case already done changed since it was done.

    Each record pins its sources by sha256 (and size). A resume checks the done cases only (cases
    still to do are hashed by the worker that reads them anyway), sizes first, which costs a
    ``stat`` per file and refuses most swaps before any hashing, then sha256, in ``threads``
    threads. Hashing reads every done source once more: measured on the 30 MB IRCAD CT, 0.07 s
    (about 0.45 GB/s from the page cache), against 1.1 s just to load it and seconds to
    synthesize its variants, so a resume costs a few percent of the work it skips, and a fresh
    run (which hashes what it has just read) about 5% of loading. A cheaper check would not be
    sure: size and modification time miss a file replaced by ``cp -p`` or ``rsync -t``.

    Raises
    ------
    InputError
        Names the case, the file and what changed (size or sha256, then and now).
    """
    pinned: dict[str, TumorRecord] = {}
    for record in records:
        pinned.setdefault(record.case_id, record)
    checks: list[tuple[str, Path, str, int | None]] = []
    unpinned = []
    for case in cases:
        pin = pinned.get(case.case_id)
        if pin is None:
            continue
        sizes = pin.extra.get("source_bytes") if isinstance(pin.extra, Mapping) else None
        sizes = sizes if isinstance(sizes, Mapping) else {}
        for role, source, digest in (
            ("image", case.image, pin.source_image_sha256),
            ("label", case.label, pin.source_label_sha256),
        ):
            if source is None:
                continue
            if not digest:
                unpinned.append(case.case_id)
                continue
            size = sizes.get(role)
            checks.append(
                (case.case_id, Path(source), digest, size if isinstance(size, int) else None)
            )
    if unpinned:
        warnings.warn(
            f"{len(set(unpinned))} done case(s) ({', '.join(sorted(set(unpinned))[:3])}...) were "
            "recorded without source hashes (an older tumorsynth); their sources are not checked",
            stacklevel=3,
        )
    for case_id, source, _, size in checks:
        try:
            now = source_bytes(source)
        except OSError as exc:
            raise _changed(case_id, source, f"it cannot be read: {exc.strerror}") from exc
        if size is not None and now != size:
            raise _changed(case_id, source, f"its size was {size} bytes, it is {now} bytes now")
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        digests = list(pool.map(source_sha256, [source for _, source, _, _ in checks]))
    for (case_id, source, digest, _), now_digest in zip(checks, digests, strict=True):
        if now_digest != digest:
            raise _changed(
                case_id, source, f"its sha256 was {digest[:16]}..., it is {now_digest[:16]}... now"
            )


def _changed(case_id: str, source: Path, what: str) -> InputError:
    return InputError(
        str(source),
        f"case {case_id!r} is already done in this output folder, but its source changed since "
        f"({what}); resuming would mix outputs of two different scans under one case id",
        fix="restore the original file, or write the new data to another --out",
    )
