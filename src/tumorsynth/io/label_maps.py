"""Label-map presets and user mappings: which label ids are which organ and which tumor.

A :class:`LabelMap` maps organ names to label ids (``{"kidney": (2, 3)}``) and tumor names
(``"<organ>_tumor"``) to ids. Presets cover TotalSegmentator, MSD/LiTS, KiTS, AbdomenAtlas
(a folder of one binary mask per organ) and tumorsynth's own output convention; a user JSON file
such as ``{"liver": 1, "kidney": [2, 3], "liver_tumor": 9}`` works the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tumorsynth.errors import InputError

__all__ = [
    "ABDOMENATLAS_FILES",
    "FILE_PRESETS",
    "OUTPUT_LABELS",
    "PRESETS",
    "LabelMap",
    "check_ids_fit_map",
    "check_shared_ids",
    "ids_present",
    "label_ids",
    "label_mask",
    "presets_explaining",
    "label_map_text",
    "resolve_label_map",
    "to_output_labels",
]

#: AbdomenAtlas: ``<case>/segmentations/<file>.nii.gz`` per organ (AbdomenAtlas 2.0 adds the
#: colon, esophagus and uterus and their lesions to the liver, pancreas and kidney).
ABDOMENATLAS_FILES: dict[str, tuple[str, ...]] = {
    "liver": ("liver",),
    "pancreas": ("pancreas",),
    "kidney": ("kidney_left", "kidney_right"),
    "colon": ("colon",),
    "esophagus": ("esophagus",),
    "uterus": ("uterus",),
    "spleen": ("spleen",),
    "liver_tumor": ("liver_tumor", "liver_lesion"),
    "pancreas_tumor": ("pancreatic_lesion", "pancreas_tumor", "pancreatic_tumor"),
    "kidney_tumor": ("kidney_tumor", "kidney_lesion"),
    "colon_tumor": ("colon_lesion", "colon_tumor"),
    "esophagus_tumor": ("esophagus_lesion", "esophagus_tumor"),
    "uterus_tumor": ("uterus_lesion", "uterus_tumor"),
}


@dataclass(frozen=True)
class LabelMap:
    """Organ and tumor ids of one labelling convention.

    Parameters
    ----------
    name
        Preset name or the JSON file it came from (used in messages).
    organs
        Organ name -> label ids, e.g. ``{"liver": (5,), "kidney": (2, 3)}``.
    tumors
        ``"<organ>_tumor"`` -> ids; existing tumors are kept and avoided by new ones.
    generic_organ
        Ids that mean "the organ of this dataset", whatever it is called (MSD: 1).
    generic_tumor
        Ids that mean "the tumor of this dataset" (MSD: 2).
    folder_files
        For folder presets (AbdomenAtlas): organ name -> mask file stems.
    other_ids
        Ids the convention defines for structures tumorsynth does not use (TotalSegmentator's
        other classes): present in a file, they are expected, not a sign of the wrong map.
    """

    name: str
    organs: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    tumors: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    generic_organ: tuple[int, ...] = ()
    generic_tumor: tuple[int, ...] = ()
    folder_files: Mapping[str, tuple[str, ...]] | None = None
    other_ids: tuple[int, ...] = ()

    def known_ids(self) -> set[int]:
        """Every id this convention defines (organs, tumors, generic and other structures)."""
        groups = (*self.organs.values(), *self.tumors.values())
        return {int(i) for ids in groups for i in ids} | {
            *self.generic_organ,
            *self.generic_tumor,
            *self.other_ids,
        }

    def organ_ids(self, organ: str) -> tuple[int, ...]:
        """Label ids of ``organ``; raises naming the map and the organs it knows."""
        if organ in self.organs:
            return self.organs[organ]
        if self.generic_organ:
            return self.generic_organ
        raise InputError(
            f"label map {self.name!r}",
            f"has no organ {organ!r}; it knows {sorted(self.organs)}",
            fix="pass a label map that names this organ",
        )

    def tumor_ids(self, organ: str) -> tuple[int, ...]:
        """Label ids of existing tumors of ``organ`` (empty when the map has none)."""
        key = f"{organ}_tumor"
        if key in self.tumors:
            return self.tumors[key]
        if organ not in self.organs and self.generic_tumor:
            return self.generic_tumor
        return ()

    def all_tumor_ids(self) -> tuple[int, ...]:
        """Every tumor id of this convention (each organ's and the generic ones), sorted."""
        ids = {int(i) for group in self.tumors.values() for i in group}
        return tuple(sorted(ids | {int(i) for i in self.generic_tumor}))

    def id_of(self, name: str) -> int:
        """The single id an output convention uses for ``name`` (organ or ``<organ>_tumor``)."""
        ids = self.organs.get(name) or self.tumors.get(name)
        if not ids:
            raise InputError(
                f"label map {self.name!r}",
                f"has no id for {name!r}; it knows {sorted({**self.organs, **self.tumors})}",
                fix="add it to the output label map",
            )
        return ids[0]

    def to_json(self) -> dict[str, object]:
        """A JSON-able mapping that :func:`resolve_label_map` reads back (used in manifests)."""
        if PRESETS.get(self.name) == self:  # not a user file that happens to be called "lits"
            return {"preset": self.name}
        out: dict[str, object] = {k: list(v) for k, v in {**self.organs, **self.tumors}.items()}
        if self.generic_organ:
            out["organ"] = list(self.generic_organ)
        if self.generic_tumor:
            out["tumor"] = list(self.generic_tumor)
        return out


def _single(**ids: int | Sequence[int]) -> dict[str, tuple[int, ...]]:
    return {k: (v,) if isinstance(v, int) else tuple(v) for k, v in ids.items()}


#: tumorsynth's output convention (FreeTumor / AbdomenAtlas style): the first six ids as they
#: always were, then the organs AbdomenAtlas 2.0 adds, each followed by its tumor.
OUTPUT_LABELS = LabelMap(
    "tumorsynth",
    organs=_single(liver=1, pancreas=3, kidney=5, colon=7, esophagus=9, uterus=11),
    tumors=_single(
        liver_tumor=2,
        pancreas_tumor=4,
        kidney_tumor=6,
        colon_tumor=8,
        esophagus_tumor=10,
        uterus_tumor=12,
    ),
)

PRESETS: dict[str, LabelMap] = {
    "tumorsynth": OUTPUT_LABELS,
    "totalsegmentator": LabelMap(
        "totalsegmentator",
        organs=_single(
            spleen=1,
            kidney=(2, 3),
            kidney_right=2,
            kidney_left=3,
            liver=5,
            pancreas=7,
            esophagus=15,
            colon=20,
        ),
        # TotalSegmentator v2 "total" task: 117 classes (github.com/wasserth/TotalSegmentator,
        # totalsegmentator/map_to_binary.py); the ones above are those tumorsynth uses. It has
        # no uterus (22 is the prostate): AbdomenAtlas's per-organ files give one.
        other_ids=tuple(range(1, 118)),
    ),
    "msd": LabelMap("msd", generic_organ=(1,), generic_tumor=(2,)),
    "lits": LabelMap("lits", organs=_single(liver=1), tumors=_single(liver_tumor=2)),
    "kits": LabelMap("kits", organs=_single(kidney=1), tumors=_single(kidney_tumor=(2, 3))),
    # The embedded phantom of `tumorsynth demo` (tumorsynth/phantom).
    "phantom": LabelMap(
        "phantom",
        organs=_single(
            liver=1,
            pancreas=3,
            kidney=5,
            spleen=7,
            vessel=8,
            bone=9,
            colon=10,
            esophagus=11,
            uterus=12,
        ),
        tumors=_single(liver_tumor=2, pancreas_tumor=4, kidney_tumor=6),
    ),
    # A folder preset: the ids are tumorsynth's own (the output convention), spleen after them.
    "abdomenatlas": LabelMap(
        "abdomenatlas",
        organs={**OUTPUT_LABELS.organs, "spleen": (13,)},
        tumors=dict(OUTPUT_LABELS.tumors),
        folder_files=ABDOMENATLAS_FILES,
    ),
}


#: Presets that describe one label file per case (AbdomenAtlas is a folder of masks).
FILE_PRESETS: tuple[str, ...] = tuple(n for n, m in PRESETS.items() if m.folder_files is None)


def resolve_label_map(spec: str | os.PathLike[str] | Mapping[str, object] | LabelMap) -> LabelMap:
    """Turn a preset name, a JSON file path, a mapping (or its JSON text, as
    :func:`label_map_text` writes it) or a :class:`LabelMap` into a LabelMap.

    Examples
    --------
    >>> resolve_label_map("totalsegmentator").organ_ids("kidney")
    (2, 3)
    >>> resolve_label_map({"liver": 1, "kidney": [2, 3]}).organ_ids("kidney")
    (2, 3)
    >>> resolve_label_map('{"liver": 1, "kidney": [2, 3]}').organ_ids("kidney")
    (2, 3)
    """
    if isinstance(spec, LabelMap):
        return spec
    if isinstance(spec, Mapping):
        if set(spec) == {"preset"}:
            return resolve_label_map(str(spec["preset"]))
        return _from_mapping(dict(spec), "<mapping>")
    text = str(spec)
    if text.lstrip().startswith("{"):  # a mapping written inline, e.g. on the command line
        try:
            inline = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
        except ValueError as exc:
            raise InputError(
                f"--label-map {text!r}",
                f"expected a JSON object of organ -> id(s), found unreadable JSON ({exc})",
            ) from None
        return _from_mapping(inline, "<mapping>")
    if text.lower() in PRESETS:
        return PRESETS[text.lower()]
    path = Path(text)
    if path.suffix.lower() != ".json" and not path.exists():
        raise InputError(
            f"--label-map {text!r}",
            f"expected a preset ({', '.join(PRESETS)}), a JSON file, or a mapping written "
            'inline such as {"liver": 1, "kidney": [2, 3]}, found none of these',
        )
    try:
        data = json.loads(
            path.read_text(encoding="utf-8"), object_pairs_hook=_refuse_duplicate_keys
        )
    except DuplicateKeyError as exc:
        raise InputError(
            str(path),
            f"key {exc.key!r} is given twice (ids {exc.first!r} and {exc.second!r}); JSON "
            "keeps only the last, so one of them would be silently dropped",
            fix="keep one entry per organ; list several ids as [2, 3]",
        ) from None
    except FileNotFoundError as exc:
        raise InputError(str(path), "label-map JSON file does not exist") from exc
    except (OSError, ValueError) as exc:
        raise InputError(
            str(path), f"expected a JSON object of organ -> id(s), found unreadable JSON ({exc})"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(
            str(path), f"expected a JSON object of organ -> id(s), found {type(data).__name__}"
        )
    return _from_mapping(data, str(path))


def label_map_text(spec: str | Mapping[str, object]) -> str:
    """A label map setting as one string: a name as it is, a mapping as its JSON text (which
    :func:`resolve_label_map` reads back), so it travels where only strings do (MONAI batches).

    Examples
    --------
    >>> label_map_text({"liver": 1, "kidney": [2, 3]})
    '{"liver": 1, "kidney": [2, 3]}'
    """
    return json.dumps(dict(spec)) if isinstance(spec, Mapping) else str(spec)


class DuplicateKeyError(ValueError):
    """A JSON object holds the same key twice."""

    def __init__(self, key: str, first: object, second: object) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.second = key, first, second


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key, out[key], value)
        out[key] = value
    return out


def _is_part_of(part: str, whole: str) -> bool:
    """``kidney_left`` names a part of ``kidney`` (tumor keys are never parts of an organ)."""
    return part.startswith(f"{whole}_") and not part.endswith("_tumor")


def check_shared_ids(entries: Mapping[str, Sequence[int]], where: str) -> None:
    """Refuse two entries that claim the same id, unless one names a part of the other.

    ``{"kidney": [2, 3], "kidney_right": 2}`` is legal (an alias of a sub-part: its ids are a
    subset of its organ's); ``{"liver": 1, "spleen": 1}`` and ``{"liver": 1, "liver_tumor": 1}``
    are not: a voxel cannot be two organs, or organ and tumor at once.
    """
    names = list(entries)
    for a_index, a in enumerate(names):
        for b in names[a_index + 1 :]:
            shared = sorted(set(entries[a]) & set(entries[b]))
            if not shared:
                continue
            for part, whole in ((a, b), (b, a)):
                if _is_part_of(part, whole) and set(entries[part]) <= set(entries[whole]):
                    break
            else:
                raise InputError(
                    where,
                    f"{a!r} and {b!r} share label id{'s' if len(shared) > 1 else ''} "
                    f"{', '.join(map(str, shared))}; a voxel cannot be both",
                    fix="give each organ and tumor its own ids (a part such as kidney_left may "
                    "reuse ids of its organ kidney)",
                )


def _from_mapping(data: dict[str, object], where: str) -> LabelMap:
    organs: dict[str, tuple[int, ...]] = {}
    tumors: dict[str, tuple[int, ...]] = {}
    generic_organ: tuple[int, ...] = ()
    generic_tumor: tuple[int, ...] = ()
    for key, value in data.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise InputError(
                where,
                f"entry {key!r}: expected a positive integer id or a list of them, found {value!r}",
            )
        ids = tuple(int(v) for v in values)  # type: ignore[arg-type]  # checked above
        if key == "organ":
            generic_organ = ids
        elif key == "tumor":
            generic_tumor = ids
        elif key.endswith("_tumor"):
            tumors[key] = ids
        else:
            organs[key] = ids
    if not organs and not generic_organ:
        raise InputError(where, 'expected at least one organ, e.g. {"liver": 1}, found none')
    generic = {"organ": generic_organ, "tumor": generic_tumor}
    check_shared_ids({**organs, **tumors, **{k: v for k, v in generic.items() if v}}, where)
    return LabelMap(
        Path(where).name if where != "<mapping>" else where,
        organs,
        tumors,
        generic_organ,
        generic_tumor,
    )


def ids_present(label: np.ndarray, ids: Sequence[int]) -> bool:
    """True when any voxel carries one of ``ids`` (cheap for uint8 labels via bincount)."""
    if label.dtype == np.uint8:
        counts = np.bincount(label.ravel(), minlength=256)
        return bool(counts[list(ids)].sum() > 0) if ids else False
    return bool(np.isin(label, ids).any())


def label_mask(label: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels of ``label`` whose id is in ``ids`` (all False for no ids).

    A boolean ``label`` is already a mask and is returned as a copy. The mask keeps the memory
    order of ``label`` (nibabel arrays are Fortran-ordered).

    Examples
    --------
    >>> label_mask(np.array([0, 1, 2, 6], np.uint8), (2, 6)).tolist()
    [False, False, True, True]
    """
    if label.dtype == bool:
        return label.copy(order="K")
    ids = sorted({int(i) for i in ids})
    if not ids:
        return np.zeros_like(label, dtype=bool)
    if len(ids) > 4:
        return np.isin(label, ids)
    mask = label == ids[0]  # a few comparisons beat a table lookup on a 512x512 scan
    for value in ids[1:]:
        mask |= label == value
    return mask


#: Voxels per step when :func:`label_ids` flags the values of a label.
_ID_CHUNK = 1 << 22


def label_ids(label: np.ndarray) -> set[int]:
    """Ids present in ``label``, 0 excluded.

    uint8/uint16 labels flag their values in a table, 4 M voxels at a time: 0.096 s for an IRCAD
    mask of 512 x 512 x 172 against 0.23 s for a ``bincount`` (which counts what is not needed)
    and 0.40 s for ``np.unique``.
    """
    if label.dtype in (np.uint8, np.uint16):
        seen = np.zeros(np.iinfo(label.dtype).max + 1, dtype=bool)
        flat = label.ravel(order="K")
        for start in range(0, flat.size, _ID_CHUNK):
            seen[flat[start : start + _ID_CHUNK]] = True
        return {int(i) for i in np.flatnonzero(seen) if i}
    return {int(i) for i in np.unique(label) if i}


def presets_explaining(ids: set[int]) -> list[str]:
    """File presets that define every id in ``ids`` and have a tumor id among them."""
    found = []
    for name in FILE_PRESETS:
        preset = PRESETS[name]
        if ids <= preset.known_ids() and ids & set(preset.all_tumor_ids()):
            found.append(name)
    return found


def check_ids_fit_map(
    present: Mapping[str, set[int]],
    label_map: LabelMap,
    tumor_ids: Sequence[int],
    *,
    flag: str,
    organ: str = "all",
) -> list[str]:
    """Check label files' ids (file name -> ids present, 0 excluded) against ``label_map``.

    Raises when the files cannot be in this convention: none of them holds one of ``tumor_ids``
    (the ids scored as tumor) or one of ``organ``'s ids (any organ's for ``"all"``), yet they
    hold other ids; or they hold ids the map does not define and none of its tumor ids.
    Returns warnings for ids the map does not define otherwise.
    """
    if not present:
        return []
    every = set().union(*present.values())
    known = label_map.known_ids()
    unknown = sorted(every - known)
    if organ in label_map.organs or (organ != "all" and label_map.generic_organ):
        organ_ids = set(label_map.organ_ids(organ))
    else:
        organ_ids = {i for ids in label_map.organs.values() for i in ids}
        organ_ids |= set(label_map.generic_organ)
    files = ", ".join(sorted(present)[:3]) + (
        f" and {len(present) - 3} more" if len(present) > 3 else ""
    )
    explaining = [p for p in presets_explaining(every) if PRESETS[p] != label_map]
    hint = (
        f"{', '.join(explaining)} define{'s' if len(explaining) == 1 else ''} them"
        if explaining
        else ""
    )
    if every and not every & set(tumor_ids) and (unknown or not every & organ_ids):
        raise InputError(
            flag,
            f"label map {label_map.name!r} scores ids {sorted(tumor_ids)} as tumor"
            + (f" of the {organ} (organ ids {sorted(organ_ids)})" if organ != "all" else "")
            + f", but {files} hold{'s' if len(present) == 1 else ''} ids {sorted(every)} and "
            "none of those"
            + (f" ({unknown} are not in the map at all)" if unknown else "")
            + "; these files use another label convention"
            + (f" ({hint})" if hint else ""),
            fix=f"pass {flag} {explaining[0]}" if explaining else f"pass the right {flag}",
        )
    if unknown:
        return [
            f"{files}: label ids {unknown} are not in {flag} {label_map.name!r} and are not "
            "counted" + (f" ({hint})" if hint else "")
        ]
    return []


def to_output_labels(
    label: np.ndarray, label_map: LabelMap, output_labels: LabelMap, organs: Sequence[str] = ()
) -> np.ndarray:
    """Relabel ``label`` into the output convention (organs and their tumors; the rest -> 0).

    A generic map (MSD: 1 organ, 2 tumor) is read as the first of ``organs``.

    Not MONAI's ``MapLabelValue``: it keeps ids it is not given (a TotalSegmentator label's
    other 100+ classes would survive unless every id were listed) and flattens the volume (a
    C-ordered copy of a Fortran-ordered nibabel array); this keeps the memory order and
    touches only the ids the maps name.

    Examples
    --------
    >>> from tumorsynth.io.label_maps import OUTPUT_LABELS, resolve_label_map
    >>> lits = resolve_label_map({"organ": 1, "tumor": 2})
    >>> to_output_labels(np.array([[[0, 1, 2]]]), lits, OUTPUT_LABELS, ["kidney"]).tolist()
    [[[0, 5, 6]]]
    """
    pairs: dict[int, int] = {}
    for name, out_ids in (*output_labels.organs.items(), *output_labels.tumors.items()):
        in_ids = label_map.organs.get(name) or label_map.tumors.get(name) or ()
        for in_id in in_ids:
            pairs.setdefault(in_id, out_ids[0])
    if organs and (label_map.generic_organ or label_map.generic_tumor):
        main = organs[0]
        for in_id in label_map.generic_organ:
            pairs.setdefault(in_id, output_labels.id_of(main))
        for in_id in label_map.generic_tumor:
            pairs.setdefault(in_id, output_labels.id_of(f"{main}_tumor"))
    out = np.zeros_like(label, dtype=np.uint8)  # keeps the memory order (nibabel: Fortran)
    for in_id, out_id in pairs.items():
        hit = label == in_id
        if hit.any():
            out[hit] = out_id
    return out
