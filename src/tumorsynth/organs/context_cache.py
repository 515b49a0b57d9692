"""Each scan's organ analysis, computed once and reused by every later draw of the same scan.

:class:`ContextCache` keeps the last few analyses (:class:`~tumorsynth.organs.context.OrganContext`)
in memory, keyed by exactly what the analysis reads: the organ's bounding box and the bytes of the
image there (:func:`~tumorsynth.organs.context.analysed_region`), of the organ mask and of the
tumor mask in it, of the excluded voxels, and the grid, spacing, profile and margin. A lookup
compares those bytes with the kept ones (a memory compare, several times cheaper than hashing
them), so a hit is never a different scan. On a miss the same bytes are hashed (sha256) to name a
file in the optional ``folder``, which outlives the process (training runs, loader workers and
``torchrun`` ranks share it): files are written atomically (temporary file, then rename, so
concurrent writers are safe) and a file that does not match its name, or cannot be read, is
computed again and replaced, never trusted.

Each process has its own memory (a forked loader worker starts with a copy of its parent's); a
pickled cache (spawned workers) arrives empty. :func:`organ_context` is the analysis of an organ
of a labelled scan, through a cache or not.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tumorsynth import __version__
from tumorsynth._types import Vec3
from tumorsynth.box import Box
from tumorsynth.errors import InputError, PlacementError
from tumorsynth.io.atomic import atomic_path, check_is_folder
from tumorsynth.io.label_maps import LabelMap, label_ids, label_mask
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OccupiedSphere, OrganContext, ParenchymaStats, analysed_region
from tumorsynth.organs.profile import OrganProfile

__all__ = ["ContextCache", "organ_context"]

#: Bump when OrganContext.build or the file layout changes: files of other versions are rebuilt.
FORMAT = 1


@dataclass
class _Inputs:
    """What one organ analysis reads: a small header and the bytes it depends on."""

    header: tuple[Any, ...]
    arrays: tuple[np.ndarray | None, ...]

    def same_as(self, other: _Inputs) -> bool:
        return self.header == other.header and all(
            (a is None and b is None)
            or (a is not None and b is not None and np.array_equal(_bits(a), _bits(b)))
            for a, b in zip(self.arrays, other.arrays, strict=True)
        )

    def digest(self) -> str:
        h = hashlib.sha256(repr((FORMAT, __version__, self.header)).encode())
        for a in self.arrays:
            h.update(b"-" if a is None else np.ascontiguousarray(a).data)
        return h.hexdigest()

    def kept(self) -> _Inputs:
        """A copy that owns its bytes (the caller's arrays may change after the lookup)."""
        return _Inputs(self.header, tuple(None if a is None else a.copy() for a in self.arrays))


class ContextCache:
    """Organ analyses of the last ``max_scans`` scans, in memory, and optionally on disk.

    Parameters
    ----------
    max_scans
        Analyses kept in memory (least recently used dropped first); 0 keeps none in memory.
    folder
        Folder of analysis files shared between processes and runs (created when missing); None
        keeps them in memory only.

    Examples
    --------
    >>> from tumorsynth.organs import LIVER
    >>> image = np.full((40, 40, 20), 100, np.int16)
    >>> organ = np.zeros(image.shape, bool)
    >>> organ[5:35, 5:35, 3:17] = True
    >>> cache = ContextCache(max_scans=2)
    >>> a = cache.get(image, organ, (2.0, 2.0, 2.0), LIVER)
    >>> b = cache.get(image.copy(), organ.copy(), (2.0, 2.0, 2.0), LIVER)
    >>> cache.hits, cache.misses, a is b, a.depth_mm is b.depth_mm
    (1, 1, False, True)
    """

    def __init__(self, max_scans: int = 8, folder: str | os.PathLike[str] | None = None) -> None:
        if isinstance(max_scans, bool) or not isinstance(max_scans, int) or max_scans < 0:
            raise InputError("max_scans", f"expected a count >= 0, found {max_scans!r}")
        self.max_scans = max_scans
        self.folder = None if folder is None else Path(folder)
        if self.folder is not None:
            check_is_folder(self.folder)
        self._kept: OrderedDict[int, tuple[_Inputs, OrganContext]] = OrderedDict()
        self._next = 0
        self.hits = 0
        self.misses = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_kept"] = OrderedDict()  # a pickled cache (spawned worker) starts empty
        return state

    def get(
        self,
        image: np.ndarray,
        organ_mask: np.ndarray,
        spacing_mm: Vec3,
        profile: OrganProfile,
        *,
        where: str = "<image>",
        organ_box: Box | None = None,
        avoid_mask: np.ndarray | None = None,
        exclude_mask: np.ndarray | None = None,
        exclude_margin_mm: float = 0.0,
    ) -> OrganContext:
        """The analysis :meth:`OrganContext.build` would return for these arguments (a fresh copy
        for one case: its own occupied spheres), from memory, the folder, or built now.

        ``organ_box`` is ``Box.of_mask(organ_mask)`` when the caller has it (saves a pass over
        the volume). ``avoid_mask`` is read inside the organ's box only, as the analysis does.
        """
        box = organ_box if organ_box is not None else Box.of_mask(organ_mask)
        if box is None:
            raise PlacementError(
                where,
                f"organ {profile.name!r} is absent (no voxels in its mask)",
                fix="check --organ and --label-map",
            )
        inputs = _inputs_of(
            image, organ_mask, spacing_mm, profile, box, avoid_mask, exclude_mask, exclude_margin_mm
        )
        for key, (kept, context) in self._kept.items():
            if kept.same_as(inputs):
                self._kept.move_to_end(key)
                self.hits += 1
                return context.fresh()
        self.misses += 1
        digest = inputs.digest() if self.folder is not None else ""
        loaded = self._load(digest, profile) if self.folder is not None else None
        if loaded is not None:
            context = loaded
        else:
            context = OrganContext.build(
                image,
                organ_mask,
                spacing_mm,
                profile,
                where=where,
                avoid_mask=avoid_mask,
                exclude_mask=exclude_mask,
                exclude_margin_mm=exclude_margin_mm,
            )
            if self.folder is not None:
                self._save(digest, context)
        for grid in (context.depth_mm, context.clearance_mm, context.exclusion_mm):
            if grid is not None:
                grid.flags.writeable = False  # shared by every case drawn from this entry
        if self.max_scans:
            self._kept[self._next] = (inputs.kept(), context)
            self._next += 1
            while len(self._kept) > self.max_scans:
                self._kept.popitem(last=False)
        return context.fresh()

    # -- the folder ---------------------------------------------------------------------------
    def _path(self, digest: str) -> Path:
        assert self.folder is not None
        return self.folder / f"organ_{digest}.npz"

    def _save(self, digest: str, context: OrganContext) -> None:
        grids = {"depth_mm": context.depth_mm, "clearance_mm": context.clearance_mm}
        if context.exclusion_mm is not None:
            grids["exclusion_mm"] = context.exclusion_mm
        # The organ's cells by depth too: a loaded analysis need not sort them again (30 ms).
        grids["order_flat"], grids["order_depth"] = context._depth_order()
        occupied = np.array(
            [(*s.center_mm, s.radius_mm, float(s.confluent)) for s in context.occupied],
            dtype=np.float64,
        ).reshape(-1, 5)
        meta = {
            "format": FORMAT,
            "digest": digest,
            "organ": context.organ,
            "spacing_mm": list(context.spacing_mm),
            "volume_shape": list(context.volume_shape),
            "bbox": [[b.start, b.stop] for b in context.bbox],
            "stride": list(context.stride),
            "parenchyma": asdict(context.parenchyma),
            "exclude_margin_mm": context.exclude_margin_mm,
        }
        self.folder.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        with atomic_path(self._path(digest)) as tmp:
            with open(tmp, "wb") as f:
                arrays = {"meta": np.array(json.dumps(meta)), "occupied": occupied, **grids}
                np.savez(f, **arrays)  # type: ignore[arg-type]

    def _load(self, digest: str, profile: OrganProfile) -> OrganContext | None:
        """The analysis in the folder's file for ``digest``; None when there is none or it does
        not hold what its name promises (it is then built and written again)."""
        path = self._path(digest)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                grids = {
                    k: data[k] for k in ("depth_mm", "clearance_mm", "exclusion_mm") if k in data
                }
                occupied, flat, depth = data["occupied"], data["order_flat"], data["order_depth"]
            if (
                meta["format"] != FORMAT
                or meta["digest"] != digest
                or meta["organ"] != profile.name
            ):
                return None
            bbox = tuple(slice(int(a), int(b)) for a, b in meta["bbox"])
            stride = tuple(int(s) for s in meta["stride"])
            coarse = tuple(len(range(b.start, b.stop, s)) for b, s in zip(bbox, stride))
            if len(bbox) != 3 or any(
                g.shape != coarse or g.dtype != np.float32 for g in grids.values()
            ):
                return None
            if occupied.ndim != 2 or occupied.shape[1] != 5 or "depth_mm" not in grids:
                return None
            if flat.shape != depth.shape or flat.ndim != 1 or flat.dtype.kind != "i":
                return None
            return OrganContext(
                profile.name,
                profile,
                tuple(float(s) for s in meta["spacing_mm"]),  # type: ignore[arg-type]
                tuple(int(n) for n in meta["volume_shape"]),  # type: ignore[arg-type]
                bbox,
                stride,  # type: ignore[arg-type]
                grids["depth_mm"],
                grids["clearance_mm"],
                ParenchymaStats(**meta["parenchyma"]),
                [
                    OccupiedSphere((float(x), float(y), float(z)), float(r), bool(c))
                    for x, y, z, r, c in occupied
                ],
                grids.get("exclusion_mm"),
                float(meta["exclude_margin_mm"]),
                _sorted=(flat, depth),
            )
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
            return None


def organ_context(
    image: np.ndarray,
    label: np.ndarray,
    organ: str,
    label_map: LabelMap,
    spacing_mm: Vec3,
    *,
    where: str = "<image>",
    cache: ContextCache | None = None,
    exclude: tuple[tuple[int, ...], np.ndarray | None, float] | None = None,
) -> OrganContext:
    """The analysis of ``organ`` in this scan (``label`` in ``label_map``'s ids), from ``cache``
    when it has it. ``exclude``: the excluded ids, their mask (full volume) and margin (mm)."""
    ids = label_map.organ_ids(organ)
    mask = label_mask(label, ids)
    box = Box.of_mask(mask)
    if box is None:
        found = sorted(label_ids(label))
        raise PlacementError(
            where,
            f"organ {organ!r} is absent: label ids {list(ids)} (map "
            f"{label_map.name!r}) are not in the label, which holds ids "
            f"{found}",
            fix="check --label-map and --organ",
        )
    # Tumor ids the user excludes are kept clear of by their voxels (with the margin), the
    # others as a sphere around each tumor; the analysis reads those in the organ's box only.
    excluded_ids, exclude_mask, margin = exclude if exclude is not None else ((), None, 0.0)
    tumor_ids = [i for i in label_map.tumor_ids(organ) if i not in excluded_ids]
    avoid = None
    if tumor_ids:
        avoid = np.zeros(label.shape, dtype=bool)  # untouched pages cost nothing
        avoid[box.slices] = label_mask(label[box.slices], tumor_ids)
    options: dict[str, Any] = {
        "where": where,
        "avoid_mask": avoid,
        "exclude_mask": exclude_mask,
        "exclude_margin_mm": margin,
    }
    if cache is None:
        return OrganContext.build(image, mask, spacing_mm, get_profile(organ), **options)
    return cache.get(image, mask, spacing_mm, get_profile(organ), organ_box=box, **options)


def _inputs_of(
    image: np.ndarray,
    organ_mask: np.ndarray,
    spacing_mm: Vec3,
    profile: OrganProfile,
    box: Box,
    avoid_mask: np.ndarray | None,
    exclude_mask: np.ndarray | None,
    exclude_margin_mm: float,
) -> _Inputs:
    spacing = tuple(float(s) for s in spacing_mm)
    region = analysed_region(box.slices, spacing, image.shape)  # type: ignore[arg-type]
    excluded = None if exclude_mask is None else Box.of_mask(exclude_mask)
    header = (
        tuple(image.shape),
        image.dtype.str,
        spacing,
        repr(profile),
        box,
        excluded,
        float(exclude_margin_mm) if exclude_mask is not None else None,
    )
    return _Inputs(
        header,
        (
            image[region],
            organ_mask[box.slices],
            None if avoid_mask is None else avoid_mask[box.slices],
            None if excluded is None else exclude_mask[excluded.slices],  # type: ignore[index]
        ),
    )


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's values as unsigned integers of the same size (bytes compare: -0.0 is not 0.0,
    a NaN equals itself)."""
    if array.dtype == bool:
        return array
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))
