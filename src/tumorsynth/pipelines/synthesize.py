"""Synthesize tumors into one case, crop-local, and replay them from their records.

The random side (:func:`synthesize_case`) draws a frozen spec per tumor (shape from the organ
profile and the scan's organ analysis, appearance from the generator), renders it at once and keeps
it if the tumor came out whole; the deterministic side (:func:`render_specs`, used by
:func:`replay_case`) renders given specs. Each tumor touches only its own crop (tumor box plus
margin, or the mass-effect box), so the cost grows with tumor size, not with scan size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi
from threadpoolctl import threadpool_limits

from tumorsynth import __version__
from tumorsynth._types import SIZE_CLASSES, RngLike, SizeClass, Vec3, as_rng
from tumorsynth.errors import InputError, PlacementError
from tumorsynth.generators import (
    BatchTumorGenerator,
    RenderInput,
    TumorGenerator,
    TumorSite,
    get_generator,
)
from tumorsynth.io.label_maps import OUTPUT_LABELS, LabelMap, resolve_label_map
from tumorsynth.io.records import TumorRecord
from tumorsynth.organs import EARLY_STAGE_DIAMETER_MM, get_profile
from tumorsynth.organs.context import OrganContext, bounding_box
from tumorsynth.shapes import (
    Box,
    RandomTumorShape,
    ShapeSpec,
    apply_mass_effect,
    mass_effect_box,
    render_shape,
    shape_box,
)

__all__ = [
    "SynthesisOutput",
    "TumorRequest",
    "TumorSpec",
    "render_specs",
    "replay_case",
    "synthesize_case",
    "to_output_labels",
]

#: A drawn tumor is kept when at least this fraction of its ellipsoid volume ended up labelled.
MIN_KEPT_FRACTION = 0.5
_SOFT_TISSUE_HU = (-250.0, 300.0)


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


@dataclass(frozen=True)
class TumorSpec:
    """Everything needed to render one tumor: shape, appearance, generator, labels."""

    organ: str
    size_class: SizeClass
    generator: str
    generator_version: str
    seed: int
    shape: ShapeSpec
    appearance: Mapping[str, Any]
    organ_label: int
    tumor_label: int

    @classmethod
    def from_record(cls, record: TumorRecord, output_labels: LabelMap = OUTPUT_LABELS) -> TumorSpec:
        """The spec a record was rendered from (its organ label from ``output_labels``)."""
        return cls(
            record.organ,
            record.size_class,  # type: ignore[arg-type]
            record.generator,  # type: ignore[arg-type]
            record.generator_version,
            record.seed,
            ShapeSpec.from_dict(record.shape),
            dict(record.appearance),
            output_labels.id_of(record.organ),
            record.tumor_label,
        )


@dataclass
class SynthesisOutput:
    """The new image (input dtype), the new label (output convention) and one record per tumor."""

    image: np.ndarray
    label: np.ndarray
    records: list[TumorRecord] = field(default_factory=list)


@dataclass
class _Patch:
    box: Box
    image: np.ndarray  # new values for box, input dtype
    label: np.ndarray  # new label for box
    changed: np.ndarray  # bool, box: voxels whose image value may differ
    tumor: np.ndarray  # bool, box: the tumor's voxels
    n_voxels: int
    tumor_mean_hu: float
    parenchyma_mean_hu: float


@dataclass
class _CaseState:
    source_image: np.ndarray
    image: np.ndarray
    label: np.ndarray
    source_label: np.ndarray
    label_map: LabelMap
    spacing_mm: Vec3
    affine: np.ndarray


# -- public API ------------------------------------------------------------------------------------
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
    generator: str | TumorGenerator = "heuristic",
    rng: RngLike = None,
    case_id: str = "case",
    affine: np.ndarray | None = None,
    output_labels: LabelMap = OUTPUT_LABELS,
    where: str = "<image>",
    max_attempts: int = 8,
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

    Returns
    -------
    SynthesisOutput
        Image, label in the output convention, one record per tumor.

    Examples
    --------
    >>> from tumorsynth.io.phantom import make_phantom
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
    with single_threaded_blas():
        return _synthesize(
            image,
            label,
            spacing_mm,
            label_map,
            requests,
            generator,
            rng,
            case_id,
            affine,
            output_labels,
            where,
            max_attempts,
        )


def _synthesize(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    requests: Sequence[TumorRequest],
    generator: str | TumorGenerator,
    rng: RngLike,
    case_id: str,
    affine: np.ndarray | None,
    output_labels: LabelMap,
    where: str,
    max_attempts: int,
) -> SynthesisOutput:
    rng = as_rng(rng)
    gen = get_generator(generator)
    state = _prepare(
        image,
        label,
        spacing_mm,
        label_map,
        output_labels,
        affine,
        where,
        [r.organ for r in requests],
    )
    contexts: dict[str, OrganContext] = {}
    renderer = _Renderer(state, case_id)
    # Largest first: big tumors need the deep parts of an organ, small ones fit around them.
    planned = [(request.organ, size) for request in requests for size in _draw_sizes(request, rng)]
    planned.sort(key=lambda item: -get_profile(item[0]).rule(item[1]).base_radius_mm)
    for organ_name, size_class in planned:
        profile = get_profile(organ_name)
        if organ_name not in contexts:
            contexts[organ_name] = _build_context(state, organ_name, where)
        context = contexts[organ_name]
        organ_label = output_labels.id_of(organ_name)
        tumor_label = output_labels.id_of(f"{organ_name}_tumor")
        seed = int(rng.integers(2**63 - 1))
        tumor_rng = np.random.default_rng(seed)
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
            )
            crops = _Crops.of(spec, state, gen)
            if renderer.must_flush_before(crops):
                renderer.flush()
            pending = _prepare_render(spec, state, gen, crops)
            if pending.tumor_voxels >= max(
                1, MIN_KEPT_FRACTION * _ellipsoid_voxels(shape, state.spacing_mm)
            ):
                renderer.add(pending, attempt)
                break
            context.occupied.pop()  # give the space back and draw again
        else:
            raise PlacementError(
                where,
                f"could not fit a whole {size_class} tumor in the "
                f"{organ_name} in {max_attempts} attempts (tumors were cut off "
                "by the organ edge)",
                fix="ask for a smaller --size",
            )
    renderer.flush()
    return SynthesisOutput(state.image, state.label, renderer.records)


def render_specs(
    image: np.ndarray,
    label: np.ndarray,
    specs: Sequence[TumorSpec],
    *,
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    case_id: str = "case",
    affine: np.ndarray | None = None,
    output_labels: LabelMap = OUTPUT_LABELS,
    where: str = "<image>",
    generators: Mapping[str, TumorGenerator] | None = None,
) -> SynthesisOutput:
    """Render frozen specs in order (the deterministic side); same specs, same voxels."""
    with single_threaded_blas():
        return _render_all(
            image,
            label,
            specs,
            spacing_mm,
            label_map,
            case_id,
            affine,
            output_labels,
            where,
            generators,
        )


def _render_all(
    image: np.ndarray,
    label: np.ndarray,
    specs: Sequence[TumorSpec],
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    case_id: str,
    affine: np.ndarray | None,
    output_labels: LabelMap,
    where: str,
    generators: Mapping[str, TumorGenerator] | None,
) -> SynthesisOutput:
    state = _prepare(
        image,
        label,
        spacing_mm,
        label_map,
        output_labels,
        affine,
        where,
        sorted({s.organ for s in specs}),
    )
    cache: dict[str, TumorGenerator] = dict(generators or {})
    renderer = _Renderer(state, case_id)
    for spec in specs:
        if spec.generator not in cache:
            cache[spec.generator] = get_generator(spec.generator)
        gen = cache[spec.generator]
        if gen.version != spec.generator_version:
            raise InputError(
                where,
                f"tumor was made by {spec.generator} {spec.generator_version}, "
                f"this is {gen.version}; replay would not be exact",
            )
        crops = _Crops.of(spec, state, gen)
        if renderer.must_flush_before(crops):
            renderer.flush()
        renderer.add(_prepare_render(spec, state, gen, crops), 1)
    renderer.flush()
    return SynthesisOutput(state.image, state.label, renderer.records)


def replay_case(
    image: np.ndarray,
    label: np.ndarray,
    records: Sequence[TumorRecord],
    *,
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    affine: np.ndarray | None = None,
    output_labels: LabelMap = OUTPUT_LABELS,
    where: str = "<image>",
    generators: Mapping[str, TumorGenerator] | None = None,
) -> SynthesisOutput:
    """Reproduce a case's tumors from their records, voxel for voxel (``generators``: instances
    by name, e.g. a loaded diffusion generator)."""
    ordered = sorted(records, key=lambda r: r.tumor_index)
    specs = [TumorSpec.from_record(record, output_labels) for record in ordered]
    case_id = ordered[0].case_id if ordered else "case"
    out = render_specs(
        image,
        label,
        specs,
        spacing_mm=spacing_mm,
        label_map=label_map,
        case_id=case_id,
        affine=affine,
        output_labels=output_labels,
        where=where,
        generators=generators,
    )
    out.records = [
        new.with_paths(
            image_path=old.image_path,
            label_path=old.label_path,
            source_image=old.source_image,
            source_label=old.source_label,
        )
        for new, old in zip(out.records, ordered)
    ]
    return out


def to_output_labels(
    label: np.ndarray, label_map: LabelMap, output_labels: LabelMap, organs: Sequence[str] = ()
) -> np.ndarray:
    """Relabel ``label`` into the output convention (organs and their tumors; the rest -> 0).

    A generic map (MSD: 1 organ, 2 tumor) is read as the first of ``organs``.
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


# -- internals -------------------------------------------------------------------------------------
def single_threaded_blas() -> threadpool_limits:
    """BLAS on one thread: the spline products are small, and OpenBLAS threads that spin for a
    busy core made them 7x slower (18 vs 2.7 ms); batch workers are the parallelism instead."""
    return threadpool_limits(1, user_api="blas")


def _prepare(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    output_labels: LabelMap,
    affine: np.ndarray | None,
    where: str,
    organs: Sequence[str],
) -> _CaseState:
    if image.ndim != 3:
        raise InputError(where, f"expected a 3-D image, found shape {image.shape}")
    if label.shape != image.shape:
        raise InputError(where, f"label shape {label.shape} does not match image {image.shape}")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(where, f"expected 3 positive voxel sizes in mm, found {spacing_mm}")
    lmap = resolve_label_map(label_map)
    if affine is None:
        affine = np.diag([*spacing, 1.0])
    return _CaseState(
        image,
        image.copy(order="K"),
        to_output_labels(label, lmap, output_labels, organs),
        label,
        lmap,
        spacing,
        np.asarray(affine, dtype=float),
    )  # type: ignore[arg-type]


def _build_context(state: _CaseState, organ: str, where: str) -> OrganContext:
    ids = state.label_map.organ_ids(organ)
    mask = _mask_of(state.source_label, ids)
    if not mask.any():
        found = [int(i) for i in _present_ids(state.source_label) if i]
        raise PlacementError(
            where,
            f"organ {organ!r} is absent: label ids {list(ids)} (map "
            f"{state.label_map.name!r}) are not in the label, which holds ids "
            f"{found}",
            fix="check --label-map and --organ",
        )
    tumor_ids = state.label_map.tumor_ids(organ)
    avoid = _mask_of(state.source_label, tumor_ids) if tumor_ids else None
    return OrganContext.build(
        state.source_image,
        mask,
        state.spacing_mm,
        get_profile(organ),
        where=where,
        avoid_mask=avoid,
    )


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


@dataclass(frozen=True)
class _Crops:
    """The crops one tumor touches, computed once per tumor."""

    shape: Box  # tumor + the generator's margin
    mass: Box | None  # where its mass effect moves tissue
    writes: Box  # ``shape`` and ``mass`` together
    reads: Box  # ``writes``, or larger for generators that read context

    @classmethod
    def of(cls, spec: TumorSpec, state: _CaseState, gen: TumorGenerator) -> _Crops:
        spacing, volume = state.spacing_mm, state.image.shape
        sbox = shape_box(spec.shape, spacing, volume, gen.margin_mm(spec.appearance))
        mbox = mass_effect_box(spec.shape, spacing, volume)
        writes = sbox if mbox is None else _union(sbox, mbox)
        reads = writes
        if isinstance(gen, BatchTumorGenerator):
            reach = gen.context_mm(spec.appearance)
            reads = _union(shape_box(spec.shape, spacing, volume, reach), writes)
        return cls(sbox, mbox, writes, reads)


@dataclass
class _Pending:
    """One tumor's geometry and render inputs, before its appearance is rendered."""

    spec: TumorSpec
    gen: TumorGenerator
    box: Box  # the crop it writes (tumor + margin, or the mass-effect box)
    inner: tuple[slice, slice, slice]
    background: np.ndarray
    label: np.ndarray
    changed: np.ndarray
    inputs: RenderInput

    @property
    def tumor_voxels(self) -> int:
        return int(self.inputs.tumor_mask.sum())


def _prepare_render(
    spec: TumorSpec, state: _CaseState, gen: TumorGenerator, crops: _Crops
) -> _Pending:
    """Everything about one tumor except its appearance (nothing is written to the case)."""
    spacing = state.spacing_mm
    shape_spec = spec.shape
    sbox, mbox, box = crops.shape, crops.mass, crops.writes
    original = c_ordered(state.image[box.slices], np.float32)
    label = c_ordered(state.label[box.slices])
    source_label = c_ordered(state.source_label[sbox.slices])
    if mbox is not None:
        moved = apply_mass_effect(shape_spec, spacing, box, original, label)
        background, label, changed = moved.image, moved.label, moved.moved
    else:
        background, changed = original, np.zeros(box.shape, dtype=bool)
    inner = box.inner(sbox)
    field = render_shape(shape_spec, spacing, sbox)
    allowed = _allowed_region(
        spec,
        field.distance_mm,
        label[inner],
        background[inner],
        source_label,
        state.label_map,
        spacing,
    )
    inputs = RenderInput(
        background[inner], original[inner], field, allowed, spacing, affine=state.affine
    )
    if isinstance(gen, BatchTumorGenerator):
        read_box = crops.reads
        context = c_ordered(state.image[read_box.slices], np.float32)
        context[read_box.inner(box)] = background  # the tissue as the mass effect left it
        inputs.context = context
        inputs.context_offset = tuple(  # type: ignore[assignment]
            s.start for s in read_box.inner(sbox)
        )
    return _Pending(spec, gen, box, inner, background, label, changed, inputs)


def _finish_render(pending: _Pending, new: np.ndarray, state: _CaseState) -> _Patch:
    """The patch of one rendered tumor (its new values and label), not yet committed."""
    spec, box, inner = pending.spec, pending.box, pending.inner
    background, label, changed = pending.background, pending.label, pending.changed
    field = pending.inputs.shape
    changed[inner] |= new != background[inner]
    final = background  # a fresh array either way (crop copy or warped copy)
    final[inner] = new
    tumor = np.zeros(box.shape, dtype=bool)
    tumor[inner] = pending.inputs.tumor_mask
    label[tumor] = spec.tumor_label
    image_out = _to_dtype(final, state.image.dtype)
    shell = (
        (field.distance_mm > 2.0) & (field.distance_mm <= 8.0) & (label[inner] == spec.organ_label)
    )
    n_voxels = int(tumor.sum())
    return _Patch(
        box,
        image_out,
        label,
        changed,
        tumor,
        n_voxels,
        float(final[tumor].mean()) if n_voxels else math.nan,
        float(final[inner][shell].mean()) if shell.any() else math.nan,
    )


class _Renderer:
    """Renders tumors in order, batching those that do not read what an earlier one writes.

    A tumor joins the pending group unless the crop it reads overlaps the crop a pending tumor
    writes; then the group is rendered (one ``render_batch`` per generator) and committed first.
    The grouping depends only on the specs, so the same specs give the same voxels, and for
    generators without context it equals rendering one by one.
    """

    def __init__(self, state: _CaseState, case_id: str) -> None:
        self.state = state
        self.case_id = case_id
        self.pending: list[tuple[_Pending, int]] = []
        self.records: list[TumorRecord] = []

    def must_flush_before(self, crops: _Crops) -> bool:
        """Whether a tumor reading ``crops.reads`` would read what a pending tumor writes."""
        return any(_overlaps(crops.reads, p.box) for p, _ in self.pending)

    def add(self, pending: _Pending, attempts: int) -> None:
        self.pending.append((pending, attempts))

    def flush(self) -> None:
        groups: dict[int, list[int]] = {}
        for i, (p, _) in enumerate(self.pending):
            groups.setdefault(id(p.gen), []).append(i)
        rendered: list[np.ndarray | None] = [None] * len(self.pending)
        for indices in groups.values():
            gen = self.pending[indices[0]][0].gen
            specs = [self.pending[i][0].spec.appearance for i in indices]
            inputs = [self.pending[i][0].inputs for i in indices]
            if isinstance(gen, BatchTumorGenerator):
                outs = gen.render_batch(specs, inputs)
            else:
                outs = [gen.render(s, inp) for s, inp in zip(specs, inputs)]
            for i, new in zip(indices, outs):
                rendered[i] = new
        for (p, attempts), out in zip(self.pending, rendered):
            assert out is not None  # every pending tumor was rendered above
            patch = _finish_render(p, out, self.state)
            _commit(patch, self.state)
            self.records.append(
                _record(p.spec, patch, self.state, self.case_id, len(self.records), attempts)
            )
        self.pending = []


def _overlaps(a: Box, b: Box) -> bool:
    return all(x < y + m and y < x + n for x, n, y, m in zip(a.origin, a.shape, b.origin, b.shape))


def _allowed_region(
    spec: TumorSpec,
    distance: np.ndarray,
    label: np.ndarray,
    image: np.ndarray,
    source_label: np.ndarray,
    label_map: LabelMap,
    spacing: Vec3,
) -> np.ndarray:
    """Where the tumor may have voxels: its organ, plus soft tissue within the allowed bulge."""
    organ = label == spec.organ_label
    inside = distance < 0
    if spec.shape.bulge_mm <= 0 or not (inside & ~organ).any():
        return organ
    # Only near the part of the tumor that leaves the organ can the bulge matter.
    reach = spec.shape.bulge_mm + 4.0 * max(spacing)
    grow = tuple(int(np.ceil(reach / s)) for s in spacing)
    sub = bounding_box((distance < reach) & ~organ, margin=grow)  # type: ignore[arg-type]
    if sub is None:
        return organ
    own = np.isin(source_label[sub], label_map.organ_ids(spec.organ))
    others = ((label[sub] != 0) & ~organ[sub]) | ((source_label[sub] != 0) & ~own)
    soft = (image[sub] >= _SOFT_TISSUE_HU[0]) & (image[sub] <= _SOFT_TISSUE_HU[1])
    # Within bulge_mm of the organ: a separable box dilation (three running maxima, O(n)); its
    # corners reach sqrt(3) x further than a ball would, which a bulge limit tolerates.
    near = organ[sub].view(np.uint8)
    for axis, step in enumerate(spacing):
        size = 2 * int(np.floor(spec.shape.bulge_mm / step)) + 1
        if size > 1:
            near = ndi.maximum_filter1d(near, size=size, axis=axis, mode="constant")
    near = near.astype(bool)
    allowed = organ.copy()
    allowed[sub] |= near & soft & ~others
    return allowed


def _commit(patch: _Patch, state: _CaseState) -> None:
    view = state.image[patch.box.slices]
    np.copyto(view, patch.image, where=patch.changed)
    state.label[patch.box.slices] = patch.label


def _record(
    spec: TumorSpec, patch: _Patch, state: _CaseState, case_id: str, index: int, attempts: int
) -> TumorRecord:
    voxel_ml = float(np.prod(state.spacing_mm)) / 1000.0
    volume = patch.n_voxels * voxel_ml
    diameter = (6.0 * volume * 1000.0 / math.pi) ** (1.0 / 3.0)
    center = np.asarray(spec.shape.center_vox, dtype=float)
    center_mm = state.affine @ np.append(center, 1.0)
    return TumorRecord(
        case_id=case_id,
        tumor_index=index,
        organ=spec.organ,
        size_class=spec.size_class,
        generator=spec.generator,
        generator_version=spec.generator_version,
        seed=spec.seed,
        tumor_label=spec.tumor_label,
        center_vox=tuple(float(c) for c in center),  # type: ignore[arg-type]
        center_mm=tuple(round(float(c), 3) for c in center_mm[:3]),  # type: ignore[arg-type]
        radii_mm=tuple(round(float(r), 3) for r in spec.shape.radii_mm),  # type: ignore[arg-type]
        diameter_mm=round(diameter, 3),
        volume_ml=round(volume, 4),
        n_voxels=patch.n_voxels,
        early_stage=bool(diameter < EARLY_STAGE_DIAMETER_MM),
        tumor_mean_hu=round(patch.tumor_mean_hu, 2),
        parenchyma_mean_hu=round(patch.parenchyma_mean_hu, 2),
        contrast_hu=round(patch.tumor_mean_hu - patch.parenchyma_mean_hu, 2),
        exophytic=spec.shape.exophytic,
        shape=spec.shape.to_dict(),
        appearance=dict(spec.appearance),
        attempts=attempts,
        label_map=state.label_map.to_json(),
        tumorsynth_version=__version__,
    )


def c_ordered(crop: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """A C-ordered copy of a crop (in ``dtype``). nibabel volumes are Fortran-ordered; mixing
    orders in elementwise work, or handing scipy a Fortran array, costs more than this copy,
    and copying in memory order first, then transposing, is 3x faster than a direct gather."""
    compact = crop.astype(dtype or crop.dtype, order="K", copy=True)
    return np.ascontiguousarray(compact)


def _ellipsoid_voxels(shape: ShapeSpec, spacing: Vec3) -> float:
    return 4.0 / 3.0 * math.pi * float(np.prod(shape.radii_mm)) / float(np.prod(spacing))


def _union(a: Box, b: Box) -> Box:
    lo = [min(x, y) for x, y in zip(a.origin, b.origin)]
    hi = [max(x + n, y + m) for x, n, y, m in zip(a.origin, a.shape, b.origin, b.shape)]
    return Box(tuple(lo), tuple(high - low for low, high in zip(lo, hi)))  # type: ignore[arg-type]


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _mask_of(label: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    mask = label == ids[0]
    for i in ids[1:]:
        mask |= label == i
    return mask


def _present_ids(label: np.ndarray) -> set[int]:
    if label.dtype == np.uint8:
        return {int(i) for i in np.flatnonzero(np.bincount(label.ravel(order="K"), minlength=1))}
    return {int(i) for i in np.unique(label)}
