"""Synthesize tumors into one case: the random side, which draws a frozen spec per tumor.

:func:`synthesize_case` plans how many tumors of which size go into which organ (largest first),
then per tumor draws a shape from the organ profile and the scan's organ analysis and an
appearance from the generator, and keeps it if the tumor comes out whole (else draws again); a
kept tumor occupies its space in the organ, so the tumors drawn after it keep clear of it. A
count drawn from the profile (``count=None``) is a plan: once the organ holds a tumor, the ones
that no longer fit are left out with a :class:`~tumorsynth.errors.PlacementWarning` (and in
``SynthesisOutput.not_placed``); an asked-for count that cannot be met raises PlacementError.
``exclude_labels`` keeps every tumor a margin away from lesions already in the scan (any label ids
of the input label: real tumors, cysts), and keeps its mass effect off them, so their voxels come
out unchanged: synthetic tumors can go into the very scans that hold real ones (host-matched).
``filters`` (:class:`~tumorsynth.pipelines.tumor_filter.TumorFilter`, one per organ) keep only
tumors a segmentor recognizes: a rejected tumor's appearance is redrawn from ``[seed, attempt]``
(its shape and site stay), and its record says verdict, score and attempts.
``context_cache`` reuses each scan's organ analysis across calls
(:class:`~tumorsynth.organs.context_cache.ContextCache`; same seed, same voxels as without it).
``window`` synthesizes for one crop of the scan only: tumor centres lie in the window, and the
work (and the output) covers the window plus the reach of the largest planned tumor
(:class:`RegionOutput`), so a training crop costs what its tumors cost, not what the scan does.
Rendering the specs into the scan is the deterministic side, in :mod:`.render`
(:func:`render_specs`, :func:`replay_case`); a kept spec becomes the tumor's record
(:mod:`.tumor_spec`).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import edt
import numpy as np

from tumorsynth import DEFAULT_GENERATOR
from tumorsynth._types import SIZE_CLASSES, RngLike, SizeClass, Vec3, as_rng
from tumorsynth.box import Box
from tumorsynth.errors import InputError, PlacementError, PlacementWarning
from tumorsynth.generators import TumorGenerator, TumorSite, get_generator
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, label_ids, label_mask
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OrganContext
from tumorsynth.organs.context_cache import ContextCache, organ_context
from tumorsynth.pipelines.render import (
    CaseState,
    PendingTumor,
    Renderer,
    SynthesisOutput,
    prepare_case,
    render_specs,
    replay_case,
    single_threaded_blas,
)
from tumorsynth.pipelines.tumor_spec import TumorSpec
from tumorsynth.shapes import RandomTumorShape, ShapeSpec
from tumorsynth.shapes.mass_effect import MASS_EFFECT_REACH

if TYPE_CHECKING:
    from tumorsynth.pipelines.tumor_filter import TumorFilter

__all__ = [
    "RegionOutput",
    "SynthesisOutput",
    "TumorRequest",
    "TumorSpec",
    "check_exclusion",
    "check_filters",
    "render_specs",
    "replay_case",
    "synthesize_case",
]

#: A drawn tumor is kept when at least this fraction of its ellipsoid volume ended up labelled.
MIN_KEPT_FRACTION = 0.5
#: What a region allows beyond a tumor's body and mass effect (mm): the heuristic generator's
#: soft edge and noise filter (at most 3.5 x 1.4 + 6 mm).
_EDGE_MM = 12.0


@dataclass
class RegionOutput(SynthesisOutput):
    """A synthesis confined to ``region`` of the scan (``synthesize_case(window=...)``): image and
    label of the region; records in its voxel frame, with the region in ``extra["region"]``
    (``replay_case`` on the same region of the scan reproduces them)."""

    region: Box = field(default_factory=lambda: Box((0, 0, 0), (0, 0, 0)))


@dataclass(frozen=True)
class TumorRequest:
    """``count`` tumors of ``size`` in ``organ``; ``count=None`` draws it from the profile."""

    organ: str
    count: int | None = None
    size: SizeClass | Literal["mixed"] = "small"

    def __post_init__(self) -> None:
        if self.size not in (*SIZE_CLASSES, "mixed"):
            raise InputError(
                "size",
                f"expected one of {', '.join((*SIZE_CLASSES, 'mixed'))}, found {self.size!r}",
            )
        if self.count is not None and self.count < 0:
            raise InputError("count", f"expected a count >= 0, found {self.count}")


def synthesize_case(
    image: np.ndarray,
    label: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    organ: str | None = None,
    count: int | None = None,
    size: SizeClass | Literal["mixed"] = "small",
    requests: Sequence[TumorRequest] | None = None,
    generator: str | TumorGenerator = DEFAULT_GENERATOR,
    rng: RngLike = None,
    case_id: str = "case",
    affine: np.ndarray | None = None,
    output_labels: LabelMap = OUTPUT_LABELS,
    where: str = "<image>",
    max_attempts: int = 8,
    exclude_labels: Sequence[int] = (),
    exclude_margin_mm: float = 0.0,
    filters: Sequence[TumorFilter] = (),
    context_cache: ContextCache | None = None,
    window: Box | None = None,
    contexts: Mapping[str, OrganContext] | None = None,
) -> SynthesisOutput:
    """Put synthetic tumors into one CT; the inputs are not modified.

    Parameters
    ----------
    image
        CT in HU, 3-D, any numeric dtype (kept in the output).
    label
        Organ labels on the same grid, ids as ``label_map`` says.
    spacing_mm
        Voxel size along the array's axes (mm); read it from the affine.
    label_map
        Which ids are which organ (preset name, JSON path, mapping or LabelMap).
    organ, count, size
        One request: ``count`` tumors (None: drawn from the profile) of a size class or
        ``"mixed"``. Use ``requests`` for several organs.
    generator
        Appearance generator name or instance.
    rng
        Seed or numpy Generator; the same seed gives the same tumors.
    affine
        Voxel-to-world affine for ``center_mm`` in records (default: diagonal spacing).
    output_labels
        The output label convention (default 1 liver / 2 liver tumor / 3 pancreas / ...).
    exclude_labels, exclude_margin_mm
        Label ids of ``label`` (real tumors, cysts: any id but the organs' own) that every
        synthetic tumor voxel keeps at least ``exclude_margin_mm`` (mm) from; no tumor's mass
        effect reaches them, so their voxels come out unchanged. An id absent from this label
        gives a warning (a dataset's cases need not all hold one). Tumor ids of the label map
        that are not excluded keep the default rule (a sphere around each, no margin).
    filters
        Quality filters, at most one per organ, each judging the tumors of its segmentor's
        organ; tumors it rejects on every attempt stay with a ``rejected`` verdict or are left
        out (``SynthesisOutput.filtered_out``), as the filter's ``on_fail`` says.
    context_cache
        Where each scan's organ analysis is kept and found again (None: analysed every call).
    window
        Only tumors centred in this box (voxels): the returned :class:`RegionOutput` covers the
        box grown by the reach of the largest planned tumor (clipped to the scan). A count drawn
        from the profile is the organ's: the window gets its largest tumor, and each other one
        with the window's share of the organ (what a crop of the whole organ's tumors would
        show). Tumors that find no room in the window after the first are left out. Excluded
        labels are seen in the region only.
    contexts
        Organ analyses of this scan to use, by organ (each copied; from :class:`ContextCache`).

    Returns
    -------
    SynthesisOutput
        Image, label in the output convention, one record per tumor (a :class:`RegionOutput`
        with ``window``).

    Examples
    --------
    >>> from tumorsynth.phantom import make_phantom
    >>> img, lab = make_phantom(0, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    >>> out = synthesize_case(img.array, lab.array, spacing_mm=img.spacing_mm,
    ...                       label_map="phantom", organ="liver", count=2, size="small", rng=0)
    >>> len(out.records), out.image.dtype == img.array.dtype
    (2, True)
    """
    if requests is None:
        if organ is None:
            raise InputError("synthesize_case", "expected organ= or requests=, found neither")
        requests = [TumorRequest(organ, count, size)]
    exclude_ids = check_exclusion(exclude_labels, exclude_margin_mm)
    check_filters(filters, [r.organ for r in requests])
    with single_threaded_blas():
        rng = as_rng(rng)
        gen = get_generator(generator)
        # Largest first: big tumors need the deep parts of an organ, small ones fit around them.
        planned = [
            (req.organ, size, req.count is None)
            for req in requests
            for size in _draw_sizes(req, rng)
        ]
        planned.sort(key=lambda item: -get_profile(item[0]).rule(item[1]).base_radius_mm)
        region = None if window is None else _region(window, planned, spacing_mm, image, where)
        if region is not None:  # the region's voxel frame, in the scan's world
            affine = np.array(np.diag([*spacing_mm, 1.0]) if affine is None else affine, float)
            affine[:3, 3] += affine[:3, :3] @ np.asarray(region.origin, dtype=float)
        state = prepare_case(
            image if region is None else image[region.slices],
            label if region is None else label[region.slices],
            spacing_mm,
            label_map,
            output_labels,
            affine,
            where,
            [r.organ for r in requests],
        )
        excluded = _Excluded.of(state, exclude_ids, exclude_margin_mm, requests, where)
        in_use: dict[str, OrganContext] = {}
        renderer = Renderer(state, case_id, filters)
        placed: Counter[str] = Counter()
        missed: Counter[tuple[str, str]] = Counter()
        seen: set[str] = set()
        for organ_name, size_class, drawn in planned:
            if organ_name not in in_use:
                if contexts is not None and organ_name in contexts:
                    context = contexts[organ_name].fresh()
                else:
                    context = _scan_context(
                        organ_name, image, label, state, excluded, context_cache, where
                    )
                if region is not None and window is not None:
                    context = context.within(region, window)
                in_use[organ_name] = context
            seed = int(rng.integers(2**63 - 1))
            if region is not None and drawn and organ_name in seen:
                # The organ's plan, seen through the window: its largest tumor, and each other
                # with the chance that it lies there (the window's share of the organ).
                if rng.random() >= in_use[organ_name].window_share():
                    continue
            seen.add(organ_name)
            try:
                _place_tumor(
                    renderer,
                    gen,
                    in_use[organ_name],
                    (organ_name, size_class),
                    seed,
                    output_labels,
                    max_attempts,
                    where,
                    excluded,
                )
            except PlacementError:
                # A count drawn from the profile is a plan, not a promise: once the organ holds
                # a tumor, one that no longer fits is left out (an asked-for count still fails).
                if not (drawn or region is not None) or not placed[organ_name]:
                    raise
                missed[(organ_name, size_class)] += 1
                continue
            placed[organ_name] += 1
        if missed:
            left_out = ", ".join(f"{n} {size} {organ}" for (organ, size), n in missed.items())
            warnings.warn(
                PlacementWarning(
                    f"{where}: no room for {left_out} tumor(s) of the count drawn from the organ "
                    f"profile; placed {sum(placed.values())} tumor(s)"
                ),
                stacklevel=2,
            )
        output = renderer.finish()
        output.not_placed = {f"{organ} {size}": n for (organ, size), n in missed.items()}
        notes: dict[str, Any] = {}
        if excluded is not None:
            notes["excluded"] = excluded.note()
        if region is not None:
            notes["region"] = {"origin": list(region.origin), "shape": list(region.shape)}
            output = RegionOutput(**vars(output), region=region)
        if notes:
            output.records = [replace(r, extra={**r.extra, **notes}) for r in output.records]
        return output


def _place_tumor(
    renderer: Renderer,
    gen: TumorGenerator,
    context: OrganContext,
    tumor: tuple[str, SizeClass],
    seed: int,
    output_labels: LabelMap,
    max_attempts: int,
    where: str,
    excluded: _Excluded | None = None,
) -> None:
    """Draw one tumor (organ, size class) until it comes out whole (and clear of the excluded
    voxels), keep it and occupy its space; raises PlacementError when it does not fit."""
    organ_name, size_class = tumor
    state = renderer.state
    profile = get_profile(organ_name)
    organ_label = output_labels.id_of(organ_name)
    tumor_label = output_labels.id_of(f"{organ_name}_tumor")
    tumor_rng = np.random.default_rng(seed)
    too_close = 0
    for attempt in range(1, max_attempts + 1):
        shape = RandomTumorShape(profile).draw(context, size_class, tumor_rng, where=where)
        site = TumorSite(
            organ_name, size_class, profile, context.parenchyma, shape, state.spacing_mm
        )
        spec = TumorSpec(
            organ_name,
            size_class,
            gen.name,
            gen.version,
            seed,
            shape,
            gen.draw(site, tumor_rng),
            organ_label,
            tumor_label,
            gen.options,
        )
        pending = renderer.prepare(spec, gen)
        whole = MIN_KEPT_FRACTION * _ellipsoid_voxels(shape, state.spacing_mm)
        if excluded is not None and not excluded.clear_of(pending):
            too_close += 1
            continue
        if pending.tumor_voxels >= max(1, whole):
            renderer.add(pending, attempt, partial(_redraw, gen, site, spec))
            context.occupy(
                np.asarray(shape.center_vox),
                shape.bounding_radius_mm,
                confluent=size_class in profile.placement.confluent_sizes,
            )
            return
    why = "tumors were cut off by the organ edge"
    if too_close:
        why = (
            f"{too_close} came within {excluded.margin_mm:g} mm of the excluded labels, "  # type: ignore[union-attr]
            f"the others were cut off by the organ edge"
        )
    raise PlacementError(
        where,
        f"could not fit a whole {size_class} tumor in the {organ_name} in {max_attempts} "
        f"attempts ({why})",
        fix="ask for a smaller --size",
    )


def _redraw(gen: TumorGenerator, site: TumorSite, spec: TumorSpec, attempt: int) -> TumorSpec:
    """The spec of a filter's ``attempt`` (2, 3, ...): same shape and site, the appearance
    drawn again from a seed derived from the tumor's own."""
    return replace(spec, appearance=gen.draw(site, np.random.default_rng([spec.seed, attempt])))


def check_filters(filters: Sequence[TumorFilter], organs: Sequence[str]) -> None:
    """At most one filter per organ, and each for an organ that gets tumors (a segmentor of
    several organs judges each of them)."""
    seen: dict[str, str] = {}
    for f in filters:
        judged = getattr(f, "organs", (f.organ,))
        for organ in judged:
            if organ in seen:
                raise InputError(
                    "filters",
                    f"two filters judge {organ} tumors ({seen[organ]} and {f.checkpoint}); "
                    "expected at most one per organ",
                )
            seen[organ] = f.checkpoint
        if not set(judged) & set(organs):
            raise InputError(
                f.checkpoint,
                f"this filter's segmentor judges {', '.join(judged)} tumors, and this run puts "
                f"tumors only into {', '.join(sorted(set(organs)))}",
                fix="pass a segmentor trained on the organ you synthesize in",
            )


def _scan_context(
    organ: str,
    image: np.ndarray,
    label: np.ndarray,
    state: CaseState,
    excluded: _Excluded | None,
    cache: ContextCache | None,
    where: str,
) -> OrganContext:
    """The organ's analysis on the whole scan (with a window, ``state`` holds the region only)."""
    exclude = None
    if excluded is not None:
        whole = excluded.mask.shape == label.shape
        mask = excluded.mask if whole else label_mask(label, excluded.ids)
        exclude = (excluded.ids, mask, excluded.margin_mm)
    return organ_context(
        image,
        label,
        organ,
        state.label_map,
        state.spacing_mm,
        where=where,
        cache=cache,
        exclude=exclude,
    )


def _region(
    window: Box,
    planned: Sequence[tuple[str, SizeClass, bool]],
    spacing_mm: Sequence[float],
    image: np.ndarray,
    where: str,
) -> Box:
    """``window`` grown by the reach of the largest planned tumor, clipped to the scan."""
    shape = image.shape
    if image.ndim != 3 or not all(
        0 <= o and n > 0 and o + n <= m for o, n, m in zip(window.origin, window.shape, shape)
    ):
        raise InputError(
            where, f"expected a window inside the 3-D scan of shape {shape}, found {window}"
        )
    reach = max((_reach_mm(organ, size) for organ, size, _ in planned), default=0.0)
    grow = [int(math.ceil(reach / s)) for s in spacing_mm]
    lo = [max(0, o - g) for o, g in zip(window.origin, grow)]
    hi = [min(n, o + w + g) for o, w, g, n in zip(window.origin, window.shape, grow, shape)]
    return Box(tuple(lo), tuple(b - a for a, b in zip(lo, hi)))  # type: ignore[arg-type]


def _reach_mm(organ: str, size: SizeClass) -> float:
    """How far from its centre (mm) a tumor of this class can reach at most: its largest body
    (axis jitter, lobes, satellites, deformation) or its mass effect, plus a soft edge."""
    profile = get_profile(organ)
    if profile.wall is not None:  # a wall tumor runs along its tube from the segment's middle
        wall = profile.wall
        half = 0.5 * wall.length_mm[size][1] * (1.0 + wall.shoulder_fraction[1])
        return half + wall.outgrowth_mm[1] + _EDGE_MM
    rule, rules = profile.rule(size), profile.shape
    radius = rule.base_radius_mm * rules.axis_jitter[1]
    lobes = max(rules.lobe_reach, rules.multinodular_reach if rule.multinodular_probability else 1)
    satellite = rules.satellite_distance[1] * radius + rules.satellite_radius_mm[1]
    body = max(lobes * radius, satellite if rule.satellite_probability else radius)
    body += 2.5 * rules.deform_amplitude[1] * radius
    mass = MASS_EFFECT_REACH * radius if rule.mass_effect[1] > 0 else 0.0
    return max(body, mass) + _EDGE_MM


def check_exclusion(
    exclude_labels: Sequence[int],
    exclude_margin_mm: float,
    *,
    names: tuple[str, str] = ("exclude_labels", "exclude_margin_mm"),
) -> tuple[int, ...]:
    """The excluded label ids, sorted and unique, after checking them and the margin.

    ``names`` are what the errors call the two settings (the CLI passes its flags).

    Raises
    ------
    InputError
        An id that is not a positive integer (0 is the background), a margin that is negative
        or not finite, or a margin without ids (it would keep nothing clear).

    Examples
    --------
    >>> check_exclusion([3, 2, 3], 10.0)
    (2, 3)
    """
    ids_name, margin_name = names
    bad: list[object] = [
        i
        for i in exclude_labels
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or int(i) < 1
    ]
    if bad:
        raise InputError(
            ids_name,
            f"expected label ids >= 1 (0 is the background), found {bad}",
            fix="give the ids of the lesions to keep clear of, e.g. 2 for the tumors of an "
            "MSD/LiTS label",
        )
    margin = float(exclude_margin_mm)
    if not math.isfinite(margin) or margin < 0:
        raise InputError(
            margin_name,
            f"expected a margin >= 0 mm, found {exclude_margin_mm}",
            fix="give the gap in mm that synthetic tumors keep from the excluded lesions",
        )
    if margin > 0 and not exclude_labels:
        raise InputError(
            margin_name,
            f"a margin of {margin:g} mm was given without label ids to keep clear of",
            fix=f"add the ids ({ids_name}), or leave the margin out",
        )
    return tuple(sorted({int(i) for i in exclude_labels}))


@dataclass
class _Excluded:
    """The voxels of one case that tumors keep ``margin_mm`` from (bool, full volume)."""

    ids: tuple[int, ...]
    margin_mm: float
    mask: np.ndarray
    box: Box | None
    spacing_mm: Vec3

    @classmethod
    def of(
        cls,
        state: CaseState,
        ids: tuple[int, ...],
        margin_mm: float,
        requests: Sequence[TumorRequest],
        where: str,
    ) -> _Excluded | None:
        """None when nothing is excluded; refuses an id of a requested organ, warns about ids
        this label does not hold (a dataset's cases need not all hold one)."""
        if not ids:
            return None
        for request in requests:
            own = sorted(set(ids) & set(state.label_map.organ_ids(request.organ)))
            if own:
                raise InputError(
                    where,
                    f"excluded label id(s) {own} are the {request.organ} itself in label map "
                    f"{state.label_map.name!r}; tumors go into the organ",
                    fix="exclude the ids of lesions (tumors, cysts), not of the organ",
                )
        found = label_ids(state.source_label)
        absent = [i for i in ids if i not in found]
        if absent:
            warnings.warn(
                f"{where}: excluded label id(s) {absent} are not in this label (it holds ids "
                f"{sorted(found)}); nothing to keep clear of for them",
                stacklevel=3,
            )
        mask = label_mask(state.source_label, ids)
        return cls(ids, margin_mm, mask, Box.of_mask(mask), state.spacing_mm)

    def clear_of(self, pending: PendingTumor) -> bool:
        """Whether a prepared tumor keeps the margin (every tumor voxel at least ``margin_mm``
        from every excluded voxel, measured between voxel centres) and its mass effect moves no
        excluded voxel."""
        if self.box is None:
            return True
        box = pending.box
        if box.overlaps(self.box) and (pending.changed & self.mask[box.slices]).any():
            return False
        sbox = Box(  # the tumor's own crop, inside the box it writes
            tuple(o + i.start for o, i in zip(box.origin, pending.inner)),
            pending.inputs.shape.distance_mm.shape,
        )
        grow = [int(math.ceil(self.margin_mm / s)) + 1 for s in self.spacing_mm]
        lo = [max(0, o - g) for o, g in zip(sbox.origin, grow)]
        hi = [
            min(n, o + m + g) for o, m, g, n in zip(sbox.origin, sbox.shape, grow, self.mask.shape)
        ]
        region = Box(tuple(lo), tuple(b - a for a, b in zip(lo, hi)))  # type: ignore[arg-type]
        if not region.overlaps(self.box):
            return True
        near = np.ascontiguousarray(self.mask[region.slices])
        if not near.any():
            return True
        distance = edt.edt(~near, anisotropy=self.spacing_mm, black_border=False, parallel=1)
        tumor = pending.inputs.tumor_mask
        inner = region.inner(sbox)
        return bool(
            not (near[inner] & tumor).any()
            and (not tumor.any() or float(distance[inner][tumor].min()) >= self.margin_mm)
        )

    def note(self) -> dict[str, Any]:
        """What the records say was excluded."""
        return {"labels": list(self.ids), "margin_mm": self.margin_mm}


def _draw_sizes(request: TumorRequest, rng: np.random.Generator) -> list[SizeClass]:
    profile = get_profile(request.organ)
    if request.size == "mixed":
        names = list(profile.mixed_weights)
        weights = np.array([profile.mixed_weights[n] for n in names])
        count = request.count if request.count is not None else int(rng.integers(1, 5))
        return [names[int(i)] for i in rng.choice(len(names), size=count, p=weights)]
    lo, hi = profile.rule(request.size).count
    count = request.count if request.count is not None else int(rng.integers(lo, hi + 1))
    return [request.size] * count


def _ellipsoid_voxels(shape: ShapeSpec, spacing: Vec3) -> float:
    """Voxels of the whole tumor before the organ clips it (a wall tumor's own volume)."""
    if shape.wall is not None:
        return shape.wall.volume_mm3() / float(np.prod(spacing))
    return 4.0 / 3.0 * math.pi * float(np.prod(shape.radii_mm)) / float(np.prod(spacing))
