"""Render frozen tumor specs into one case (the deterministic side), and replay records.

Each tumor touches only its own crop (tumor box plus the generator's margin, or the mass-effect
box): the crop is cut out, its tissue pushed aside by the mass effect, the tumor's appearance
rendered where it may lie (its organ, plus soft tissue within the allowed bulge), and the crop
pasted back. So the cost grows with tumor size, not with scan size. Tumors that do not read what
an earlier one writes are rendered together (one ``render_batch`` per generator).

With quality filters (:mod:`.tumor_filter`), each rendered tumor of a filtered organ is scored
before it is pasted (one network call per group); one that fails has its appearance redrawn with
a seed derived from its own (``[seed, attempt]``), and it and the tumors after it are rendered
again, so the case is always the one its records replay to.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi
from threadpoolctl import ThreadpoolController

from tumorsynth._types import Vec3
from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.generators import RenderInput, TumorGenerator, get_generator
from tumorsynth.io.label_maps import (
    OUTPUT_LABELS,
    LabelMap,
    label_mask,
    resolve_label_map,
    to_output_labels,
)
from tumorsynth.io.records import TumorRecord
from tumorsynth.organs import get_profile
from tumorsynth.organs.context_hollow import in_range
from tumorsynth.pipelines.tumor_spec import TumorSpec
from tumorsynth.shapes import apply_mass_effect, mass_effect_box, render_shape, shape_box

if TYPE_CHECKING:
    from tumorsynth.pipelines.tumor_filter import FilterInput, TumorFilter

__all__ = ["SynthesisOutput", "render_specs", "replay_case"]

_SOFT_TISSUE_HU = (-250.0, 300.0)


@dataclass
class SynthesisOutput:
    """The new image (input dtype), the new label (output convention) and one record per tumor."""

    image: np.ndarray
    label: np.ndarray
    records: list[TumorRecord] = field(default_factory=list)
    #: Tumors of a count drawn from the organ profile that found no room ("liver large": 2).
    not_placed: dict[str, int] = field(default_factory=dict)
    #: Tumors a quality filter rejected on every attempt and that were left out (``skip``):
    #: organ, size class, seed, best score, attempts.
    filtered_out: list[dict[str, Any]] = field(default_factory=list)


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
    filters: Sequence[TumorFilter] = (),
) -> SynthesisOutput:
    """Render frozen specs in order (the deterministic side); same specs, same voxels.
    ``filters`` only score the tumors of their organs (each record's ``filter_verdict`` holds
    the score and verdict); nothing is redrawn or left out."""
    with single_threaded_blas():
        state = prepare_case(
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
        renderer = Renderer(state, case_id, filters, redraw=False)
        for spec in specs:
            if spec.generator not in cache:
                cache[spec.generator] = get_generator(spec.generator, **spec.generator_options)
            gen = cache[spec.generator]
            if gen.version != spec.generator_version:
                raise InputError(
                    where,
                    f"tumor was made by {spec.generator} {spec.generator_version}, "
                    f"this is {gen.version}; replay would not be exact",
                    fix=(
                        f"render it with the tumorsynth release that has {spec.generator} "
                        f"{spec.generator_version}, or synthesize the tumor again with "
                        f"{gen.version}"
                    ),
                )
            renderer.add(renderer.prepare(spec, gen), 1)
        return renderer.finish()


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
    filters: Sequence[TumorFilter] = (),
) -> SynthesisOutput:
    """Reproduce a case's tumors from their records, voxel for voxel. Each generator is rebuilt
    from its records' ``generator_options`` unless ``generators`` holds an instance by its name
    (e.g. one loaded on another device). ``filters`` score the replayed tumors again (the new
    records' ``filter_verdict``), as in :func:`render_specs`."""
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
        filters=filters,
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


# -- the case and its renderer (shared with the random side, synthesize.py) -----------------------
def single_threaded_blas() -> Any:
    """BLAS on one thread: the spline products are small, and OpenBLAS threads that spin for a
    busy core made them 7x slower (18 vs 2.7 ms); batch workers are the parallelism instead.
    The libraries are looked up once per process (a lookup reads /proc/self/maps: 8 ms, which
    a training crop drawn online cannot spare)."""
    return _blas_controller(os.getpid()).limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller(pid: int) -> ThreadpoolController:
    del pid  # the key: a forked process looks its libraries up again
    return ThreadpoolController()


@dataclass
class CaseState:
    """One case being synthesized: the inputs, the image and label being written, the maps."""

    source_image: np.ndarray
    image: np.ndarray  # a copy of source_image, tumors pasted in
    label: np.ndarray  # output convention, tumors labelled in
    source_label: np.ndarray
    label_map: LabelMap
    spacing_mm: Vec3
    affine: np.ndarray


def prepare_case(
    image: np.ndarray,
    label: np.ndarray,
    spacing_mm: Sequence[float],
    label_map: LabelMap | str | Mapping[str, Any],
    output_labels: LabelMap,
    affine: np.ndarray | None,
    where: str,
    organs: Sequence[str],
) -> CaseState:
    """Check the inputs and start a case (``organs``: read a generic label map as the first)."""
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
    return CaseState(
        image,
        image.copy(order="K"),
        to_output_labels(label, lmap, output_labels, organs),
        label,
        lmap,
        spacing,
        np.asarray(affine, dtype=float),
    )


#: Draws a tumor's appearance again for filter attempt ``n`` (2, 3, ...): the spec to render.
Redraw = Callable[[int], TumorSpec]


@dataclass
class _Queued:
    """A prepared tumor waiting for the next flush."""

    pending: PendingTumor
    attempts: int  # placement attempts it took
    redraw: Redraw | None = None
    filter_attempt: int = 1
    best_score: float = -1.0


class Renderer:
    """Renders tumors in order, batching those that do not read what an earlier one writes.

    A tumor joins the pending group unless the crop it reads overlaps the crop a pending tumor
    writes; then the group is rendered (one ``render_batch`` per generator) and committed first.
    The grouping depends only on the specs, so the same specs give the same voxels, and for
    generators without context it equals rendering one by one. ``filters`` (one per organ)
    judge each rendered tumor before it is committed (module docstring).
    """

    def __init__(
        self,
        state: CaseState,
        case_id: str,
        filters: Sequence[TumorFilter] = (),
        *,
        redraw: bool = True,
    ) -> None:
        self.state = state
        self.redraw = redraw
        self.case_id = case_id
        self.pending: list[_Queued] = []
        self.records: list[TumorRecord] = []
        self.filtered_out: list[dict[str, Any]] = []
        self.filters = {f.organ: f for f in filters}

    def prepare(self, spec: TumorSpec, gen: TumorGenerator) -> PendingTumor:
        """One tumor's crops and render inputs (nothing is written to the case), after rendering
        the pending group if this tumor would read what one of them writes."""
        crops = _Crops.of(spec, self.state, gen)
        if any(crops.reads.overlaps(q.pending.box) for q in self.pending):
            self.flush()
        return _prepare_render(spec, self.state, gen, crops)

    def add(self, pending: PendingTumor, attempts: int, redraw: Redraw | None = None) -> None:
        """Keep a prepared tumor (drawn in ``attempts`` tries); it is rendered at the next flush.
        ``redraw`` gives its spec for a filter's next attempt (none: it is not redrawn)."""
        self.pending.append(_Queued(pending, attempts, redraw))

    def flush(self) -> None:
        """Render the pending tumors, judge them, paste them into the case and record them, in
        order; a tumor a filter rejects is redrawn, and it and those after it are queued again."""
        while self.pending:
            queued, self.pending = self.pending, []
            patches = self._render(queued)
            scores = self._judge(queued, patches)
            for i, (item, patch, score) in enumerate(zip(queued, patches, scores, strict=True)):
                judge = self.filters.get(item.pending.spec.organ)
                note: dict[str, Any] | None = None
                if judge is not None and score is not None and not self.redraw:
                    note = {"score": round(score, 4), "passed": judge.passes(score)}
                elif judge is not None and score is not None:
                    if not judge.passes(score) and item.filter_attempt <= judge.retries:
                        if item.redraw is not None:
                            self._requeue(queued[i:], score)
                            break
                    note = judge.note(score, item.filter_attempt)
                    if not judge.passes(score) and judge.on_fail == "skip":
                        self._left_out(item, max(score, item.best_score))
                        continue
                self._keep(item, patch, note)

    def _render(self, queued: Sequence[_Queued]) -> list[_Patch]:
        """Each queued tumor rendered (one ``render_batch`` per generator), not yet committed."""
        groups: dict[int, list[int]] = {}
        for i, q in enumerate(queued):
            groups.setdefault(id(q.pending.gen), []).append(i)
        rendered: dict[int, np.ndarray] = {}
        for indices in groups.values():
            gen = queued[indices[0]].pending.gen
            specs = [queued[i].pending.spec.appearance for i in indices]
            inputs = [queued[i].pending.inputs for i in indices]
            rendered.update(zip(indices, gen.render_batch(specs, inputs), strict=True))
        return [_finish_render(q.pending, rendered[i], self.state) for i, q in enumerate(queued)]

    def _judge(self, queued: Sequence[_Queued], patches: Sequence[_Patch]) -> list[float | None]:
        """Each filtered tumor's score (one call per filter), None for the others."""
        scores: list[float | None] = [None] * len(queued)
        for organ, judge in self.filters.items():
            indices = [i for i, q in enumerate(queued) if q.pending.spec.organ == organ]
            if indices:
                inputs = [_filter_input(patches[i], self.state, judge.field_mm) for i in indices]
                for i, score in zip(indices, judge.score(inputs), strict=True):
                    scores[i] = score
        return scores

    def _requeue(self, queued: Sequence[_Queued], score: float) -> None:
        """Redraw the first tumor's appearance and queue it and the rest again (each prepared
        against the case as it now is)."""
        first = queued[0]
        attempt = first.filter_attempt + 1
        again = [
            replace(
                first,
                pending=self.prepare(first.redraw(attempt), first.pending.gen),  # type: ignore[misc]
                filter_attempt=attempt,
                best_score=max(first.best_score, score),
            )
        ]
        self.pending.extend(again)
        for item in queued[1:]:
            spec = item.pending.spec
            self.pending.append(replace(item, pending=self.prepare(spec, item.pending.gen)))

    def _keep(self, item: _Queued, patch: _Patch, note: dict[str, Any] | None) -> None:
        state = self.state
        _commit(patch, state)
        record = item.pending.spec.to_record(
            case_id=self.case_id,
            tumor_index=len(self.records),
            attempts=item.attempts,
            n_voxels=patch.n_voxels,
            tumor_mean_hu=patch.tumor_mean_hu,
            parenchyma_mean_hu=patch.parenchyma_mean_hu,
            spacing_mm=state.spacing_mm,
            affine=state.affine,
            label_map=state.label_map,
        )
        if note is not None:
            record = replace(record, filter_verdict=note)
        self.records.append(record)

    def _left_out(self, item: _Queued, best: float) -> None:
        spec = item.pending.spec
        self.filtered_out.append(
            {
                "organ": spec.organ,
                "size_class": spec.size_class,
                "seed": spec.seed,
                "best_score": round(float(best), 4),
                "attempts": item.filter_attempt,
            }
        )

    def finish(self) -> SynthesisOutput:
        """Render what is pending and return the case."""
        self.flush()
        out = SynthesisOutput(self.state.image, self.state.label, self.records)
        out.filtered_out = list(self.filtered_out)
        return out


# -- one tumor: crops, mass effect, render inputs, patch -------------------------------------------
@dataclass(frozen=True)
class _Crops:
    """The crops one tumor touches, computed once per tumor."""

    shape: Box  # tumor + the generator's margin
    mass: Box | None  # where its mass effect moves tissue
    writes: Box  # ``shape`` and ``mass`` together
    reads: Box  # ``writes`` and the generator's context around the tumor

    @classmethod
    def of(cls, spec: TumorSpec, state: CaseState, gen: TumorGenerator) -> _Crops:
        spacing, volume = state.spacing_mm, state.image.shape
        sbox = shape_box(spec.shape, spacing, volume, gen.margin_mm(spec.appearance))
        mbox = mass_effect_box(spec.shape, spacing, volume)
        writes = sbox if mbox is None else sbox.union(mbox)
        reads = shape_box(spec.shape, spacing, volume, gen.context_mm(spec.appearance))
        return cls(sbox, mbox, writes, reads.union(writes))


@dataclass
class PendingTumor:
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


@dataclass
class _Patch:
    """One rendered tumor's crop, ready to paste back, and what it measures."""

    box: Box
    image: np.ndarray  # new values for box, input dtype
    label: np.ndarray  # new label for box
    changed: np.ndarray  # bool, box: voxels whose image value may differ
    tumor: np.ndarray  # bool, box: this tumor's voxels
    n_voxels: int
    tumor_mean_hu: float
    parenchyma_mean_hu: float


def _prepare_render(
    spec: TumorSpec, state: CaseState, gen: TumorGenerator, crops: _Crops
) -> PendingTumor:
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
    shape_field = render_shape(shape_spec, spacing, sbox)
    allowed = _allowed_region(
        spec,
        shape_field.distance_mm,
        label[inner],
        background[inner],
        source_label,
        state.label_map,
        spacing,
    )
    reads = crops.reads
    if reads == box:  # it reads what it writes: the crop as the mass effect left it, no copy
        context = background
    else:
        context = c_ordered(state.image[reads.slices], np.float32)
        context[reads.inner(box)] = background  # the tissue as the mass effect left it
    inputs = RenderInput(
        background[inner],
        original[inner],
        shape_field,
        allowed,
        spacing,
        context,
        tuple(s.start for s in reads.inner(sbox)),
        state.affine,
    )
    return PendingTumor(spec, gen, box, inner, background, label, changed, inputs)


def _finish_render(pending: PendingTumor, new: np.ndarray, state: CaseState) -> _Patch:
    """The patch of one rendered tumor (its new values and label), not yet committed."""
    spec, box, inner = pending.spec, pending.box, pending.inner
    background, label, changed = pending.background, pending.label, pending.changed
    shape_field = pending.inputs.shape
    changed[inner] |= new != background[inner]
    final = background  # a fresh array either way (crop copy or warped copy)
    final[inner] = new
    tumor = np.zeros(box.shape, dtype=bool)
    tumor[inner] = pending.inputs.tumor_mask
    label[tumor] = spec.tumor_label
    image_out = _to_dtype(final, state.image.dtype)
    shell = (
        (shape_field.distance_mm > 2.0)
        & (shape_field.distance_mm <= 8.0)
        & (label[inner] == spec.organ_label)
    )
    n_voxels = int(tumor.sum())
    tumor_hu = final[tumor]
    tissue = get_profile(spec.organ).tissue_hu
    if tissue is not None:
        # A hollow organ: its shell also holds lumen, and the tumor's edge voxels toward the
        # remaining lumen are part air (partial volume); both are measured on tissue only, as a
        # reader's region of interest would be.
        wall = shell & in_range(final[inner], tissue)
        shell = wall if wall.any() else shell  # a wall thinner than a coarse voxel: all of it
        solid = tumor_hu[in_range(tumor_hu, tissue)]
        tumor_hu = solid if solid.size else tumor_hu
    return _Patch(
        box,
        image_out,
        label,
        changed,
        tumor,
        n_voxels,
        float(tumor_hu.mean()) if n_voxels else math.nan,
        float(final[inner][shell].mean()) if shell.any() else math.nan,
    )


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
    near_box = Box.of_mask((distance < reach) & ~organ, margin=grow)
    if near_box is None:
        return organ
    sub = near_box.slices
    own = label_mask(source_label[sub], label_map.organ_ids(spec.organ))
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


def _filter_input(patch: _Patch, state: CaseState, field_mm: float) -> FilterInput:
    """The case around a rendered, uncommitted tumor (``field_mm`` wide, clipped to the scan),
    with the tumor's patch in it, for a filter."""
    from tumorsynth.pipelines.tumor_filter import FilterInput

    found = Box.of_mask(patch.tumor)
    origin = np.asarray(patch.box.origin) + (np.asarray(found.origin) if found else 0)
    shape = np.asarray(found.shape if found else patch.box.shape)
    center = origin + (shape - 1) / 2.0
    half = np.ceil(0.5 * field_mm / np.asarray(state.spacing_mm)) + 1
    lo = np.maximum(np.floor(center - half), 0).astype(int)
    hi = np.minimum(np.ceil(center + half) + 1, state.image.shape).astype(int)
    field = Box(tuple(int(v) for v in lo), tuple(int(v) for v in hi - lo))  # type: ignore[arg-type]
    view = field.union(patch.box)
    image = c_ordered(state.image[view.slices], np.float32)
    tumor = np.zeros(view.shape, dtype=bool)
    inner = view.inner(patch.box)
    image[inner] = np.where(patch.changed, patch.image, image[inner])
    tumor[inner] = patch.tumor
    return FilterInput(image, tumor, state.spacing_mm, state.affine)


def _commit(patch: _Patch, state: CaseState) -> None:
    """Paste a patch back into the case (image values only where they may have changed)."""
    view = state.image[patch.box.slices]
    np.copyto(view, patch.image, where=patch.changed)
    state.label[patch.box.slices] = patch.label


# -- small helpers ---------------------------------------------------------------------------------
def c_ordered(crop: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """A C-ordered copy of a crop (in ``dtype``). nibabel volumes are Fortran-ordered; mixing
    orders in elementwise work, or handing scipy a Fortran array, costs more than this copy,
    and copying in memory order first, then transposing, is 3x faster than a direct gather."""
    compact = crop.astype(dtype or crop.dtype, order="K", copy=True)
    return np.ascontiguousarray(compact)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)
