"""The tumors of a reader study: found in the sources, classed by size and drawn (the parts of
:func:`tumorsynth.turing.study.create_study` before the items are cut, see
:mod:`tumorsynth.turing.study_grid`), and the operator's montage of the items.

A *tumor* is a 26-connected component of an organ's tumor labels
(:func:`tumorsynth.evaluation.lesions.connected_components`, numbered 1, 2, ... in the order of
their first voxel in the label's C order, before components under the minimum volume are
dropped, so a number stays that of the component in the label file). Its size class comes from
its equivalent diameter (:func:`size_class_of`), the same rule for real and synthetic tumors: a
synthetic tumor is classed by what was drawn, not by the class it was asked for. A tumor of a
hollow organ (colon, esophagus: a wall thickening over a segment of the tube) is classed by its
length along the organ instead (:func:`length_along_organ_mm`), against the lengths its organ
profile gives each class: its volume follows the tube's width more than the tumor's stage.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from tumorsynth._types import SIZE_CLASSES, SizeClass
from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.evaluation.lesions import connected_components
from tumorsynth.io.label_maps import label_mask
from tumorsynth.io.records import read_numbered_manifest
from tumorsynth.organs import OrganProfile, equivalent_diameter_mm, get_profile
from tumorsynth.realism.feature_rows import CaseInput, tumor_organs
from tumorsynth.realism.features import without_ignored
from tumorsynth.turing.layout import DEFAULT_PRESETS, KeyEntry, StudyInfo, Truth
from tumorsynth.turing.study_grid import LpsGrid

__all__ = [
    "StudyTumor",
    "case_tumors",
    "manifest_generators",
    "select_tumors",
    "length_along_organ_mm",
    "size_class_of",
    "size_class_bounds",
    "write_montage",
]

#: Source image (resolved) -> ``(centre voxel, generator)`` of each tumor its manifest records.
Generators = Mapping[Path, Sequence[tuple[tuple[int, int, int], str]]]


def size_class_bounds(organ: str) -> list[tuple[SizeClass, float]]:
    """``(size class, upper bound in mm)`` of ``organ``'s size classes, smallest first; the last
    bound is infinite. The bound is on the equivalent diameter, or for a hollow organ (a profile
    with ``wall`` rules) on the length along the organ.

    The profile gives each class a base radius (SynTumor: tiny 4, small 8, medium 16, large
    32 mm), so a class's typical diameter is twice that. A boundary lies at the geometric mean
    of two neighbouring classes' diameters (tiny/small at sqrt(8 x 16) = 11.3 mm, small/medium
    22.6 mm, medium/large 45.3 mm for the liver): sizes double from class to class, so the
    geometric mean is the point halfway between them on the scale they are spread on. A hollow
    organ's class has a typical length instead, the middle of its ``wall.length_mm`` range
    (colon: 11.5, 22.5, 40, 62.5 mm), and the same rule between them.

    Examples
    --------
    >>> [(name, round(upper, 1)) for name, upper in size_class_bounds("liver")]
    [('tiny', 11.3), ('small', 22.6), ('medium', 45.3), ('large', inf)]
    >>> [round(upper, 1) for _, upper in size_class_bounds("colon")]
    [16.1, 30.0, 50.0, inf]
    """
    profile = get_profile(organ)
    if profile.wall is not None:
        lengths = profile.wall.length_mm
        typical = {name: 0.5 * (lengths[name][0] + lengths[name][1]) for name in lengths}
    else:
        typical = {name: 2.0 * rule.base_radius_mm for name, rule in profile.size_classes.items()}
    classes = sorted(typical.items(), key=lambda item: item[1])
    sizes = [size for _, size in classes]
    uppers = [math.sqrt(a * b) for a, b in zip(sizes, sizes[1:])] + [math.inf]
    return [(name, upper) for (name, _), upper in zip(classes, uppers)]


def size_class_of(size_mm: float, organ: str) -> SizeClass:
    """The size class of a tumor of ``organ`` of this size (mm): its equivalent diameter, or for
    a hollow organ its length along the organ; see :func:`size_class_bounds`.

    Examples
    --------
    >>> size_class_of(11.0, "liver"), size_class_of(54.7, "liver"), size_class_of(25.0, "colon")
    ('tiny', 'large', 'small')
    """
    for name, upper in size_class_bounds(organ):
        if size_mm < upper:
            return name
    raise AssertionError("the last bound is infinite")


def length_along_organ_mm(
    tumor: np.ndarray, tube: np.ndarray, spacing_mm: Sequence[float]
) -> float:
    """Length (mm) of a wall tumor along its tube: over how much of the tube's local axis the
    tumor's cross-section (its voxels per slab across the axis) is at least half its largest,
    the length at half thickness, as the wall shape's ``length_mm`` is defined (the thin tails
    of its shouldered ends, and a slightly tilted axis, would lengthen its whole extent).

    The axis is the main axis (largest principal component) of the ``tube`` voxels (organ and
    tumor, same grid) within ``reach`` of the tumor's centre, ``reach`` 1.5 times the larger of
    the tumor's farthest voxel from its centre and 20 mm: a stretch of tube longer than it is
    wide, so even a ring-shaped tumor shorter than the tube is wide is measured along the tube,
    not across it. On a bend the axis is the stretch's chord. Without tube voxels the tumor's
    own main axis is used. Slabs are one voxel thick along the axis.

    Examples
    --------
    >>> tube = np.zeros((20, 20, 60), bool); tube[5:15, 5:15, :] = True  # a tube along z
    >>> ring = np.zeros_like(tube); ring[5:15, 5:15, 28:32] = True; ring[7:13, 7:13, :] = False
    >>> length_along_organ_mm(ring, tube, (1.0, 1.0, 2.0))  # 4 slices of 2 mm, not 10 mm wide
    8.0
    """
    spacing = np.asarray(spacing_mm, dtype=float)
    points = np.argwhere(tumor) * spacing
    centre = points.mean(axis=0)
    reach = 1.5 * max(float(np.linalg.norm(points - centre, axis=1).max()), 20.0)
    lo = np.maximum(0, np.floor((centre - reach) / spacing).astype(int))
    hi = np.minimum(tube.shape, np.ceil((centre + reach) / spacing).astype(int) + 1)
    near = (np.argwhere(tube[tuple(slice(a, b) for a, b in zip(lo, hi))]) + lo) * spacing
    near = near[np.linalg.norm(near - centre, axis=1) <= reach]
    cloud = near if len(near) >= 3 else points
    _, _, axes = np.linalg.svd(cloud - cloud.mean(axis=0), full_matrices=False)
    along = points @ axes[0]
    step = float(np.abs(axes[0]) @ spacing)  # one voxel along the axis
    counts = np.bincount(np.floor((along - along.min()) / step + 1e-9).astype(int))
    above = np.flatnonzero(counts >= 0.5 * counts.max())
    return round(float((above[-1] - above[0] + 1) * step), 3)


@dataclass(frozen=True)
class StudyTumor:
    """One tumor that can become an item.

    ``center_vox`` is the component's voxel nearest its centre of mass, in the file's grid (the
    centre of mass itself when that voxel is in the tumor, as for any convex one); the item is
    centred on it. ``half_extent_mm`` is, per LPS axis ``(z, y, x)``, the distance from that
    centre to the far edge of the tumor's bounding box.
    """

    truth: Truth
    organ: str
    size_class: SizeClass
    diameter_mm: float
    volume_ml: float
    image: Path
    label: Path
    component: int
    center_vox: tuple[int, int, int]
    half_extent_mm: tuple[float, float, float]
    spacing_zyx: tuple[float, float, float]
    label_shape: tuple[int, int, int]
    label_affine: tuple[tuple[float, ...], ...]
    generator: str = ""


def manifest_generators(
    sources: Sequence[str | Path],
) -> dict[Path, list[tuple[tuple[int, int, int], str]]]:
    """For each image a manifest (``*.jsonl`` among ``sources``) names: its tumors' centre
    voxels and generators, to tell which generator made each synthetic component."""
    found: dict[Path, list[tuple[tuple[int, int, int], str]]] = {}
    for source in sources:
        path = Path(source)
        if path.suffix != ".jsonl":
            continue
        for _, record in read_numbered_manifest(path):
            if not record.image_path:
                continue  # cases_from_sources refuses such a record, naming it
            image = Path(record.image_path)
            image = (image if image.is_absolute() else path.parent / image).resolve()
            centre = tuple(int(round(float(c))) for c in record.center_vox)
            found.setdefault(image, []).append((centre, record.generator))  # type: ignore[arg-type]
    return found


def case_tumors(
    case: CaseInput,
    truth: Truth,
    *,
    min_volume_mm3: float,
    generators: Generators,
) -> list[StudyTumor]:
    """Every tumor of ``case.organs`` (() = every organ of its map with a tumor label) of at
    least ``min_volume_mm3`` in one case; tumors that ``case.ignore_label`` marks (the real
    tumors a synthetic case inherited from its source scan) are left out.

    Raises
    ------
    InputError
        A label file that cannot be read, a map with no tumor label, an organ without an organ
        profile (so its sizes cannot be classed), an ignore label on another grid.
    """
    from tumorsynth.io import load_label

    if not Path(case.label).is_file():
        raise InputError(str(case.label), f"case {case.case!r}: label file does not exist")
    label = load_label(case.label)
    array = without_ignored(case, label)
    organs = case.organs or tumor_organs(case.label_map)
    if not organs:
        raise InputError(
            str(case.label),
            f"label map {case.label_map.name!r} names no tumor label, so there is no tumor to show",
            fix='use a map with "<organ>_tumor" ids',
        )
    grid = LpsGrid.of(label.affine, label.shape)
    spacing = label.spacing_mm
    voxel_mm3 = float(np.prod(spacing))
    known = generators.get(Path(case.image).resolve(), [])
    affine = tuple(tuple(float(v) for v in row) for row in label.affine)
    tumors: list[StudyTumor] = []
    for organ in organs:
        ids = case.label_map.tumor_ids(organ)
        if not ids:
            continue  # this source has no tumors of that organ
        wall = _profile_of(organ, case).wall is not None
        mask = label_mask(array, ids)
        box = Box.of_mask(mask)
        if box is None:
            continue
        # C order, whatever the file's memory order: cc3d numbers in memory order
        components, count = connected_components(np.ascontiguousarray(mask[box.slices]))
        del mask
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        for index, where in enumerate(ndimage.find_objects(components), start=1):
            volume_mm3 = float(sizes[index]) * voxel_mm3
            if where is None or volume_mm3 < min_volume_mm3:
                continue
            part = components[where] == index
            offset = [b + s.start for b, s in zip(box.origin, where)]
            local = _central_voxel(part, spacing)
            centre = tuple(o + c for o, c in zip(offset, local))
            half = [(max(c, n - 1 - c) + 0.5) * s for c, n, s in zip(local, part.shape, spacing)]
            diameter = equivalent_diameter_mm(volume_mm3)
            size = diameter
            if wall:  # a hollow organ's tumor: its length along the tube
                size = _wall_length(array, case, organ, ids, part, offset, spacing)
            tumors.append(
                StudyTumor(
                    truth=truth,
                    organ=organ,
                    size_class=size_class_of(size, organ),
                    diameter_mm=round(diameter, 3),
                    volume_ml=round(volume_mm3 / 1000.0, 4),
                    image=Path(case.image),
                    label=Path(case.label),
                    component=index,
                    center_vox=centre,
                    half_extent_mm=grid.permute_zyx(half),
                    spacing_zyx=grid.spacing_zyx,
                    label_shape=label.shape,
                    label_affine=affine,
                    generator=_generator_of(known, components, box, index)
                    if truth == "synthetic"
                    else "",
                )
            )
    return tumors


def _wall_length(
    array: np.ndarray,
    case: CaseInput,
    organ: str,
    tumor_ids: Sequence[int],
    part: np.ndarray,
    offset: Sequence[int],
    spacing: Sequence[float],
) -> float:
    """:func:`length_along_organ_mm` of one component (``part``, at ``offset`` in ``array``),
    its tube being the organ's and the organ's tumors' voxels around it."""
    organ_ids = case.label_map.organs.get(organ, ())
    extent_mm = float(np.linalg.norm(np.asarray(part.shape) * np.asarray(spacing)))
    reach_mm = 1.5 * max(0.5 * extent_mm, 20.0)  # at least the reach the axis is taken over
    margin = [int(math.ceil(reach_mm / s)) + 1 for s in spacing]
    lo = [max(0, o - m) for o, m in zip(offset, margin)]
    hi = [min(n, o + p + m) for o, p, m, n in zip(offset, part.shape, margin, array.shape)]
    window = tuple(slice(a, b) for a, b in zip(lo, hi))
    tube = label_mask(array[window], (*organ_ids, *tumor_ids))
    tumor = np.zeros(tube.shape, dtype=bool)
    inner = tuple(slice(o - a, o - a + n) for o, a, n in zip(offset, lo, part.shape))
    tumor[inner] = part
    return length_along_organ_mm(tumor, tube, spacing)


def _profile_of(organ: str, case: CaseInput) -> OrganProfile:
    try:
        return get_profile(organ)
    except InputError as exc:
        raise InputError(
            str(case.label),
            f"tumors of organ {organ!r} (label map {case.label_map.name!r}) cannot be classed "
            f"by size: {exc.message}",
            fix="name the organ in the study's organs (e.g. organs: [liver])",
        ) from None


def _central_voxel(part: np.ndarray, spacing: Sequence[float]) -> tuple[int, int, int]:
    """The voxel of ``part`` nearest its centre of mass (mm distances)."""
    com = np.asarray(ndimage.center_of_mass(part))
    nearest = tuple(int(v) for v in np.rint(com))
    if part[nearest]:
        return nearest  # type: ignore[return-value]
    voxels = np.argwhere(part)
    distance = (((voxels - com) * np.asarray(spacing)) ** 2).sum(axis=1)
    return tuple(int(v) for v in voxels[int(np.argmin(distance))])  # type: ignore[return-value]


def _generator_of(
    known: Sequence[tuple[tuple[int, int, int], str]],
    components: np.ndarray,
    box: Box,
    index: int,
) -> str:
    """The generator of the record whose centre lies in component ``index``; else the one
    generator of every record of the case; else ""."""
    inside = set()
    for centre, generator in known:
        local = tuple(c - o for c, o in zip(centre, box.origin))
        if all(0 <= v < n for v, n in zip(local, components.shape)) and components[local] == index:
            inside.add(generator)
    names = inside or {generator for _, generator in known}
    return names.pop() if len(names) == 1 else ""


def select_tumors(
    pool: Sequence[StudyTumor],
    count: int,
    organs: Sequence[str],
    sizes: Sequence[str],
    rng: np.random.Generator,
) -> list[StudyTumor]:
    """``count`` tumors of ``pool`` spread as evenly as the pool allows over ``organs``, then
    over ``sizes`` within each organ: each share as equal as possible; an organ or size with too
    few tumors gives all it has and the others take the rest; a remainder goes to the first
    ones in the order given (so a caller that passes one shuffled order for real and for
    synthetic tumors gets the same organs and sizes in both where the pools allow). Within a
    cell, the tumors are drawn at random.

    Examples
    --------
    >>> from dataclasses import replace
    >>> t = StudyTumor("real", "liver", "tiny", 8.0, 0.3, Path("a"), Path("b"), 1, (0, 0, 0),
    ...                (5.0, 5.0, 5.0), (1.0, 1.0, 1.0), (9, 9, 9), ())
    >>> pool = [replace(t, size_class=s, component=i) for i, s in enumerate(["tiny"] * 5 + ["large"])]
    >>> sorted(x.size_class for x in select_tumors(pool, 4, ["liver"], ["tiny", "large"],
    ...                                            np.random.default_rng(0)))
    ['large', 'tiny', 'tiny', 'tiny']
    """
    if count > len(pool):
        raise ValueError(f"asked for {count} tumors of a pool of {len(pool)}")
    cells: dict[str, dict[str, list[StudyTumor]]] = {o: {s: [] for s in sizes} for o in organs}
    for tumor in pool:
        cells[tumor.organ][tumor.size_class].append(tumor)
    for by_size in cells.values():
        for size, members in by_size.items():
            by_size[size] = [members[i] for i in rng.permutation(len(members))]
    per_organ = _spread(count, {o: sum(map(len, cells[o].values())) for o in organs})
    chosen: list[StudyTumor] = []
    for organ in organs:
        capacity = {s: len(cells[organ][s]) for s in sizes}
        for size, n in _spread(per_organ[organ], capacity).items():
            chosen += cells[organ][size][:n]
    return chosen


def _spread(count: int, capacity: Mapping[str, int]) -> dict[str, int]:
    """``count`` split over the keys of ``capacity``, as equally as their capacities allow; a
    remainder to the first keys."""
    shares = dict.fromkeys(capacity, 0)
    left = count
    while left > 0:
        open_keys = [k for k in capacity if shares[k] < capacity[k]]
        if not open_keys:
            raise ValueError(f"cannot place {count} in capacities {dict(capacity)}")
        for key in open_keys[:left]:
            shares[key] += 1
        left -= min(left, len(open_keys))
    return shares


def write_montage(
    path: Path, info: StudyInfo, key: Sequence[KeyEntry], middles: Mapping[str, np.ndarray]
) -> None:
    """The operator's sheet: every item's middle axial slice (abdomen window; radiological
    view, the patient's right on the left), its id, truth, organ, size class and diameter
    under it; real items first, then synthetic, each by organ and size."""
    from tumorsynth.evaluation.plots import new_figure, save_figure

    try:
        import matplotlib  # noqa: F401  (optional extra tumorsynth[plots])
    except ImportError:
        warnings.warn("matplotlib is not installed: no key/items.png", stacklevel=3)
        return
    rank: dict[str, int] = {size: i for i, size in enumerate(SIZE_CLASSES)}
    entries = sorted(
        key,
        key=lambda e: (
            e.truth != "real",
            e.organ,
            rank.get(e.size_class, 9),
            e.diameter_mm,
            e.item_id,
        ),
    )
    columns = min(8, len(entries))
    rows = math.ceil(len(entries) / columns)
    _, y_mm, x_mm = (n * s for n, s in zip(info.shape, info.spacing_mm))
    panel = 2.1
    figure = new_figure(columns * panel, rows * panel * (y_mm / x_mm) + rows * 0.55 + 0.5)
    width, level = DEFAULT_PRESETS["abdomen"]
    colours = {"real": "#1f4e9c", "synthetic": "#b3261e"}
    for index, entry in enumerate(entries):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(
            middles[entry.item_id],
            cmap="gray",
            vmin=level - width / 2,
            vmax=level + width / 2,
            aspect=info.spacing_mm[1] / info.spacing_mm[2],
            interpolation="nearest",
        )
        axes.set_xticks([])
        axes.set_yticks([])
        for spine in axes.spines.values():
            spine.set_edgecolor(colours[entry.truth])
            spine.set_linewidth(2.5)
        axes.set_title(entry.item_id, fontsize=7, family="monospace", pad=2)
        axes.set_xlabel(
            f"{entry.truth.upper()}\n{entry.organ} {entry.size_class} {entry.diameter_mm:.0f} mm",
            fontsize=8,
            color=colours[entry.truth],
            labelpad=2,
        )
    figure.suptitle(
        f"{info.title}: answer key ({len(entries)} items, middle axial slices, W{width:g} L{level:g})",
        fontsize=10,
    )
    figure.tight_layout()
    save_figure(figure, path)
