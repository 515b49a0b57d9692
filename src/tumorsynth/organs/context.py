"""Per-scan analysis of one organ: where tumors may go and what its parenchyma looks like.

Built once per case and organ, then shared by every tumor placed in it. Distance maps are computed
on a coarse grid (about 1.5 mm) over the organ's bounding box only, so the cost depends on the
organ, not on the scan, and never on a full-volume float copy.

Tumors keep clear of two kinds of existing structures: tumors of the label map and tumors placed
in this run are *occupied spheres* (new tumors keep ``gap_mm`` from them, or may merge with them
when both are of a confluent size class); voxels the user *excludes* (any label ids: real tumors,
cysts) are a distance map, so a new tumor keeps a margin from the lesion's own voxels, not from a
sphere around it.

The analysis of a scan does not change from one draw to the next: :meth:`OrganContext.fresh` hands
out a copy for one case (its own occupied spheres, the grids shared), which is what
:mod:`tumorsynth.organs.context_cache` keeps per scan; :meth:`OrganContext.within` confines a copy
to a region of the scan (a training crop and the margin its tumors need).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace

import edt
import numpy as np
from scipy import ndimage as ndi

from tumorsynth._types import Vec3
from tumorsynth.box import Box
from tumorsynth.errors import PlacementError
from tumorsynth.organs.context_hollow import hollow_parenchyma, thin, tissue_residual
from tumorsynth.organs.profile import OrganProfile

__all__ = [
    "NOISE_SIGMA_MM",
    "OccupiedSphere",
    "OrganContext",
    "ParenchymaStats",
    "analysed_region",
    "robust_std",
]

_COARSE_MM = 1.5
_PICK_BATCH = 256
_PICK_BATCHES = 8
#: Scale (mm) separating the tissue's low-frequency content from the scan's noise: the organ's
#: noise is measured at it, and generators keep the residual finer than it inside their tumors.
NOISE_SIGMA_MM = 2.0
#: Robust std = 1.4826 x MAD. Not scipy's ``scale="normal"`` (1.482602...): the measured noise is
#: frozen into every heuristic tumor's record, and this constant keeps earlier records and their
#: voxels reproducible (``scale="normal"`` moves noise_hu by 1.5e-6 relative, in every record).
_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class ParenchymaStats:
    """The organ's own intensity, measured on this scan (HU).

    ``noise_hu`` is the robust std (1.4826 * MAD) of the 2 mm high-pass residual inside the organ,
    the same residual the heuristic generator keeps inside tumors, so noise stays the scan's own.
    """

    median_hu: float
    noise_hu: float
    p05_hu: float
    p95_hu: float
    vessel_fraction: float
    n_voxels: int

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 3) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class OccupiedSphere:
    """A region new tumors must keep clear of: centre (mm, voxel-axis frame) and radius (mm).

    ``confluent``: a tumor of a confluent size class (see
    :class:`~tumorsynth.organs.profile.PlacementRules`) placed in this run, which another such
    tumor may touch or partly overlap when no separate site remains.
    """

    center_mm: tuple[float, float, float]
    radius_mm: float
    confluent: bool = False


@dataclass
class OrganContext:
    """One organ of one scan, analysed for placement and appearance.

    Attributes
    ----------
    bbox
        The organ's bounding box in the full volume (voxel slices).
    stride
        Subsampling of the coarse grid per axis (about 1.5 mm).
    depth_mm
        Coarse grid over ``bbox``: distance to the organ surface inside the organ, 0 outside.
    clearance_mm
        Coarse grid: distance to the nearest bright vessel or non-parenchymal structure inside the
        organ mask (fat, fluid; inf where none were found). A hollow organ's lumen (a profile
        with ``tissue_hu``) is no obstacle: only vessels count there.
    occupied
        Spheres already taken by tumors (existing ones and those placed in this run).
    exclusion_mm
        Coarse grid: a lower bound on the distance (mm) from anywhere within half a coarse cell
        to the nearest excluded voxel (None when nothing is excluded).
    exclude_margin_mm
        Gap (mm) every tumor voxel keeps from the excluded voxels.
    origin
        Where the volume the context is used in starts in the scan it was built on (voxels;
        :meth:`within`): voxel coordinates in and out of the methods, ``volume_shape`` and the
        occupied spheres are in that volume's frame; ``bbox`` stays in the scan's.
    window
        Coarse-grid cells tumor centres may be picked from (None: all of them).
    """

    organ: str
    profile: OrganProfile
    spacing_mm: Vec3
    volume_shape: tuple[int, int, int]
    bbox: tuple[slice, slice, slice]
    stride: tuple[int, int, int]
    depth_mm: np.ndarray
    clearance_mm: np.ndarray
    parenchyma: ParenchymaStats
    occupied: list[OccupiedSphere] = field(default_factory=list)
    exclusion_mm: np.ndarray | None = None
    exclude_margin_mm: float = 0.0
    origin: tuple[int, int, int] = (0, 0, 0)
    window: tuple[slice, slice, slice] | None = None
    _sorted: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _sorted_cells: np.ndarray | None = field(default=None, repr=False)  # (3, N) of _sorted
    _window_sorted: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        image: np.ndarray,
        organ_mask: np.ndarray,
        spacing_mm: Vec3,
        profile: OrganProfile,
        *,
        where: str = "<image>",
        avoid_mask: np.ndarray | None = None,
        exclude_mask: np.ndarray | None = None,
        exclude_margin_mm: float = 0.0,
    ) -> OrganContext:
        """Analyse ``organ_mask`` (bool, full volume) in ``image`` (HU, any dtype).

        ``avoid_mask`` (bool, full volume) marks existing tumors to keep clear of (as spheres);
        ``exclude_mask`` (bool, full volume) marks voxels every tumor voxel keeps
        ``exclude_margin_mm`` from (measured to the voxels themselves, anywhere in the scan).

        Raises
        ------
        PlacementError
            The organ is absent from the mask.
        """
        organ_box = Box.of_mask(organ_mask)
        if organ_box is None:
            raise PlacementError(
                where,
                f"organ {profile.name!r} is absent (no voxels in its mask)",
                fix="check --organ and --label-map",
            )
        bbox = organ_box.slices
        stride = tuple(max(1, int(round(_COARSE_MM / s))) for s in spacing_mm)
        coarse = tuple(slice(b.start, b.stop, st) for b, st in zip(bbox, stride))
        coarse_spacing = tuple(s * st for s, st in zip(spacing_mm, stride))  # 3 axes
        # Gather in the volume's own memory order (nibabel: Fortran); a transposing gather of the
        # strided view costs 5x more.
        order = "F" if organ_mask.flags.f_contiguous else "C"
        mask_c = np.array(organ_mask[coarse], order=order)  # type: ignore[call-overload]
        # Pad by one voxel so the bounding box edge counts as outside the organ.
        depth = edt.edt(
            np.pad(mask_c, 1), anisotropy=coarse_spacing, parallel=1, black_border=True, order=order
        )[1:-1, 1:-1, 1:-1].astype(np.float32)
        image_c = np.array(image[coarse], dtype=np.float32, order=order)  # type: ignore[call-overload]
        sigma_c = [1.0 / s for s in coarse_spacing]
        if profile.tissue_hu is None:
            interior = depth > 3.0
            if interior.sum() < 20:
                interior = mask_c
            values = thin(image_c[interior])
            median = float(np.median(values))
            smooth = ndi.gaussian_filter(image_c, sigma=sigma_c, truncate=2.5)
            vessels = mask_c & (smooth > median + profile.vessel_threshold_hu)
            # Fat, fluid and collecting system inside the mask (renal sinus, fissures) are kept
            # clear of too: a tumor there would paint over anatomy that is not parenchyma.
            obstacles = vessels | (mask_c & (smooth < min(median - 80.0, 20.0)))
        else:
            interior, values, median, vessels = hollow_parenchyma(
                image, organ_mask, bbox, image_c, mask_c, sigma_c, profile
            )
            obstacles = vessels  # the lumen is where a wall tumor grows, not an obstacle
        clearance = _vessel_clearance(obstacles, coarse_spacing)  # type: ignore[arg-type]
        calm = interior & ~vessels
        if calm.sum() >= 20:
            values = thin(image_c[calm])
            median = float(np.median(values))
        noise = _measure_noise(image, organ_mask, bbox, spacing_mm, tissue_hu=profile.tissue_hu)
        stats = ParenchymaStats(
            median_hu=median,
            noise_hu=noise,
            p05_hu=float(np.percentile(values, 5)),
            p95_hu=float(np.percentile(values, 95)),
            vessel_fraction=float(vessels.sum() / max(1, mask_c.sum())),
            n_voxels=int(np.count_nonzero(mask_c)) * int(np.prod(stride)),
        )
        lo, hi = profile.expected_parenchyma_hu
        if not lo <= median <= hi:
            warnings.warn(
                f"{where}: {profile.name} parenchyma median {median:.0f} HU is outside the "
                f"expected {lo:.0f}..{hi:.0f} HU; is the mask or the image right?",
                stacklevel=2,
            )
        context = cls(
            profile.name,
            profile,
            tuple(float(s) for s in spacing_mm),  # type: ignore[arg-type]
            tuple(int(s) for s in image.shape),  # type: ignore[arg-type]
            bbox,
            stride,  # type: ignore[arg-type]
            depth,
            clearance,
            stats,
        )
        if avoid_mask is not None:
            context.occupy_mask(avoid_mask)
        if exclude_mask is not None:
            context.exclusion_mm = _exclusion_distance(
                exclude_mask,
                bbox,
                stride,  # type: ignore[arg-type]
                spacing_mm,
            )
            context.exclude_margin_mm = float(exclude_margin_mm)
        return context

    # -- geometry ------------------------------------------------------------------------------
    # -- one case, one region ------------------------------------------------------------------
    def fresh(self) -> OrganContext:
        """A copy for one case: its own occupied spheres (those the analysis found), the grids
        and the depth order shared (nothing writes them)."""
        self._depth_order()  # sorted once here, not in every copy
        self._sorted_coords()
        return replace(self, occupied=list(self.occupied))

    def within(self, region: Box, window: Box) -> OrganContext:
        """A copy for synthesizing in ``region`` of the scan on its own (voxels of the scan this
        context was built on), with tumor centres picked only in ``window`` (scan voxels, inside
        ``region``). Coordinates of the copy are ``region``'s; the rules and grids are the scan's
        (a crop does not move the organ's 30-70% slice range, nor its depth)."""
        shift = np.asarray(region.origin) - np.asarray(self.origin)
        start = np.array([b.start for b in self.bbox]) - np.asarray(self.origin)
        st = np.array(self.stride)
        lo = np.ceil((np.asarray(window.origin) - start) / st).astype(int)
        hi = np.ceil((np.asarray(window.origin) + window.shape - start) / st).astype(int)
        cells = tuple(
            slice(int(np.clip(a, 0, n)), int(np.clip(b, 0, n)))
            for a, b, n in zip(lo, hi, self.depth_mm.shape)
        )
        offset_mm = shift * np.array(self.spacing_mm)
        return replace(
            self,
            volume_shape=tuple(int(n) for n in region.shape),  # type: ignore[arg-type]
            origin=tuple(int(o) for o in region.origin),  # type: ignore[arg-type]
            window=cells,  # type: ignore[arg-type]
            occupied=[
                replace(s, center_mm=tuple(float(c) for c in np.subtract(s.center_mm, offset_mm)))  # type: ignore[arg-type]
                for s in self.occupied
            ],
        )

    # -- geometry ------------------------------------------------------------------------------
    def coarse_to_voxel(self, index: np.ndarray) -> np.ndarray:
        """Coarse-grid indices (N, 3) -> voxel coordinates (N, 3) float (of the volume in use:
        the scan, or the region of :meth:`within`)."""
        start = np.array([b.start for b in self.bbox], dtype=np.float64) - np.array(self.origin)
        return start + np.asarray(index, dtype=np.float64) * np.array(self.stride)

    def voxel_to_coarse(self, vox: np.ndarray) -> np.ndarray:
        start = np.array([b.start for b in self.bbox], dtype=np.float64) - np.array(self.origin)
        idx = np.rint((np.asarray(vox, dtype=np.float64) - start) / np.array(self.stride))
        return idx.astype(np.int64)

    def depth_at(self, vox: np.ndarray) -> np.ndarray:
        """Organ depth (mm) at voxel coordinates (N, 3); 0 outside the organ's box."""
        idx = self.voxel_to_coarse(np.atleast_2d(vox))
        inside = np.all((idx >= 0) & (idx < np.array(self.depth_mm.shape)), axis=1)
        out = np.zeros(len(idx), dtype=np.float32)
        good = idx[inside]
        out[inside] = self.depth_mm[good[:, 0], good[:, 1], good[:, 2]]
        return out

    def candidates(
        self,
        *,
        min_depth_mm: float,
        max_depth_mm: float = math.inf,
        min_clearance_mm: float = 0.0,
        keep_clear_mm: float = 0.0,
        merge_fraction: float = 0.0,
        excluded_clear_mm: float = 0.0,
    ) -> np.ndarray:
        """All coarse-grid voxels (N, 3) that satisfy depth, vessel clearance and collision rules.

        ``keep_clear_mm`` is the new tumor's bounding radius (plus gap): candidates closer than
        ``keep_clear_mm + sphere.radius_mm`` to an occupied sphere are dropped; with
        ``merge_fraction`` > 0 (a confluent tumor), a confluent sphere may be overlapped by that
        fraction of the smaller of the two radii. ``excluded_clear_mm``: candidates closer than
        this to an excluded voxel are dropped (no effect when nothing is excluded).
        """
        cells = self.window or tuple(slice(0, n) for n in self.depth_mm.shape)
        allowed = self._allowed(cells, min_depth_mm, max_depth_mm, min_clearance_mm)
        index = np.argwhere(allowed) + np.array([c.start for c in cells])
        if self.exclusion_mm is not None and len(index):
            index = index[self._allowed_at(index, 0.0, excluded_clear_mm)]
        if len(index) and self.occupied:
            index = index[self._clear_of_tumors(index, keep_clear_mm, merge_fraction)]
        return index

    def pick(
        self,
        rng: np.random.Generator,
        *,
        min_depth_mm: float,
        max_depth_mm: float = math.inf,
        min_clearance_mm: float = 0.0,
        keep_clear_mm: float = 0.0,
        merge_fraction: float = 0.0,
        excluded_clear_mm: float = 0.0,
    ) -> np.ndarray | None:
        """One coarse-grid voxel drawn uniformly from :meth:`candidates`, or None if there is none.

        Organ voxels are kept sorted by depth, so the voxels deep enough are a slice of that list;
        batches drawn from the slice are checked for clearance and collisions (the cost does not
        grow with organ size times tumor count). When batches keep failing, the exhaustive list
        decides.
        """
        by_depth, depth = self._depth_order()
        lo = int(np.searchsorted(-depth, -max_depth_mm, side="left"))
        hi = int(np.searchsorted(-depth, -min_depth_mm, side="right"))
        if hi <= lo:
            return None
        shape = self.depth_mm.shape
        for _ in range(_PICK_BATCHES):
            flat = by_depth[lo + rng.integers(hi - lo, size=min(_PICK_BATCH, hi - lo))]
            index = np.stack(np.unravel_index(flat, shape), axis=1)
            ok = self._allowed_at(index, min_clearance_mm, excluded_clear_mm)
            if self.occupied:
                ok[ok] = self._clear_of_tumors(index[ok], keep_clear_mm, merge_fraction)
            if ok.any():
                return index[int(np.argmax(ok))]
        every = self.candidates(
            min_depth_mm=min_depth_mm,
            max_depth_mm=max_depth_mm,
            min_clearance_mm=min_clearance_mm,
            keep_clear_mm=keep_clear_mm,
            merge_fraction=merge_fraction,
            excluded_clear_mm=excluded_clear_mm,
        )
        return every[int(rng.integers(len(every)))] if len(every) else None

    def _depth_order(self) -> tuple[np.ndarray, np.ndarray]:
        """Organ voxels of the coarse grid (flat indices; those of the window, if any) sorted
        by depth, deepest first."""
        if self._sorted is None:
            flat = np.flatnonzero(self.depth_mm > 0)
            depth = self.depth_mm.ravel()[flat]
            # 0.01 mm steps as uint32 make numpy use a radix sort (stable): O(n), no float sort.
            order = np.argsort(-np.rint(depth * 100).astype(np.int64), kind="stable")
            self._sorted = (flat[order], depth[order])
        if self.window is None:
            return self._sorted
        if self._window_sorted is None:  # the scan's order, filtered: still sorted
            (flat, depth), coords = self._sorted, self._sorted_coords()
            inside = np.ones(len(flat), dtype=bool)
            for axis, cells in enumerate(self.window):
                inside &= (coords[axis] >= cells.start) & (coords[axis] < cells.stop)
            self._window_sorted = (flat[inside], depth[inside])
        return self._window_sorted

    def window_share(self) -> float:
        """The share of the organ's coarse cells that lie in the window (1 without one)."""
        if self.window is None:
            return 1.0
        return len(self._depth_order()[0]) / max(1, len(self._sorted[0]))  # type: ignore[index]

    def _sorted_coords(self) -> np.ndarray:
        """Grid coordinates (3, N) of the depth order, for windows to filter it."""
        if self._sorted_cells is None:
            flat, _ = self._depth_order() if self._sorted is None else self._sorted
            self._sorted_cells = np.stack(np.unravel_index(flat, self.depth_mm.shape)).astype(
                np.int32
            )
        return self._sorted_cells

    def _allowed_at(
        self, index: np.ndarray, min_clearance_mm: float, excluded_clear_mm: float
    ) -> np.ndarray:
        ok = np.ones(len(index), dtype=bool)
        if min_clearance_mm > 0:
            ok &= self.clearance_mm[index[:, 0], index[:, 1], index[:, 2]] >= min_clearance_mm
        if self.exclusion_mm is not None:
            ok &= self.exclusion_mm[index[:, 0], index[:, 1], index[:, 2]] >= excluded_clear_mm
        lo, hi = self.profile.placement.slice_range
        if (lo, hi) != (0.0, 1.0):
            n = self.depth_mm.shape[2]
            ok &= (index[:, 2] >= math.floor(lo * n)) & (index[:, 2] < math.ceil(hi * n))
        if self.window is not None:
            for axis, cells in enumerate(self.window):
                ok &= (index[:, axis] >= cells.start) & (index[:, axis] < cells.stop)
        return ok

    def _allowed(
        self,
        cells: tuple[slice, ...],
        min_depth_mm: float,
        max_depth_mm: float,
        min_clearance_mm: float,
    ) -> np.ndarray:
        """Depth, clearance and slice-range rules on the coarse cells ``cells``."""
        depth = self.depth_mm[cells]
        ok = (depth >= min_depth_mm) & (depth <= max_depth_mm)
        if min_clearance_mm > 0:
            ok &= self.clearance_mm[cells] >= min_clearance_mm
        lo, hi = self.profile.placement.slice_range
        if (lo, hi) != (0.0, 1.0):
            n, first = self.depth_mm.shape[2], cells[2].start
            ok[:, :, : max(0, int(math.floor(lo * n)) - first)] = False
            ok[:, :, max(0, int(math.ceil(hi * n)) - first) :] = False
        return ok

    def _clear_of_tumors(
        self, index: np.ndarray, keep_clear_mm: float, merge_fraction: float = 0.0
    ) -> np.ndarray:
        pos_mm = self.coarse_to_voxel(index) * np.array(self.spacing_mm)
        keep = np.ones(len(index), dtype=bool)
        for sphere in self.occupied:
            dist = np.linalg.norm(pos_mm - np.array(sphere.center_mm), axis=1)
            need = sphere.radius_mm + keep_clear_mm
            if merge_fraction > 0 and sphere.confluent:
                need -= merge_fraction * min(sphere.radius_mm, keep_clear_mm)
            keep &= dist >= need
        return keep

    def occupy(self, center_vox: np.ndarray, radius_mm: float, *, confluent: bool = False) -> None:
        """Mark a sphere as taken (a tumor placed in this run; ``confluent``: one that another
        tumor of a confluent size class may merge with)."""
        center_mm = np.asarray(center_vox, dtype=np.float64) * np.array(self.spacing_mm)
        self.occupied.append(
            OccupiedSphere(
                tuple(float(c) for c in center_mm),  # type: ignore[arg-type]
                float(radius_mm),
                bool(confluent),
            )
        )

    def excluded_clear_at(self, vox: np.ndarray) -> np.ndarray:
        """Lower bound on the distance (mm) from voxel coordinates (N, 3) to the nearest excluded
        voxel: inf when nothing is excluded, 0 (unknown) outside the organ's box."""
        if self.exclusion_mm is None:
            return np.full(len(np.atleast_2d(vox)), np.inf, dtype=np.float32)
        out = np.zeros(len(np.atleast_2d(vox)), dtype=np.float32)
        idx = self.voxel_to_coarse(np.atleast_2d(vox))
        inside = np.all((idx >= 0) & (idx < np.array(self.exclusion_mm.shape)), axis=1)
        good = idx[inside]
        out[inside] = self.exclusion_mm[good[:, 0], good[:, 1], good[:, 2]]
        return out

    def occupy_mask(self, mask: np.ndarray) -> None:
        """Mark every connected component of ``mask`` (existing tumors) as taken."""
        sub = mask[self.bbox]
        if not sub.any():
            return
        labels, n = ndi.label(sub)
        start = np.array([b.start for b in self.bbox]) - np.array(self.origin)
        for box in ndi.find_objects(labels):
            if box is None:
                continue
            lo = np.array([b.start for b in box]) + start
            hi = np.array([b.stop for b in box]) + start
            center = (lo + hi - 1) / 2.0
            radius = 0.5 * float(np.linalg.norm((hi - lo) * np.array(self.spacing_mm)))
            self.occupy(center, radius)


def _exclusion_distance(
    exclude_mask: np.ndarray,
    bbox: tuple[slice, slice, slice],
    stride: tuple[int, int, int],
    spacing_mm: Vec3,
) -> np.ndarray:
    """Coarse grid over ``bbox`` (the organ's, with ``stride``): a lower bound (mm) on the
    distance from any point within half a cell of a grid point to the nearest voxel of
    ``exclude_mask`` (bool, full volume), wherever in the scan that voxel lies.

    Each grid point stands for the ``stride`` voxels around it; a cell holding any excluded voxel
    counts as excluded (thin structures survive), the anisotropic distance runs between cells on
    a grid covering the organ's box and the excluded voxels, and the largest offset of a voxel
    in its cell plus half a cell (the jitter of a tumor centre around its grid point) is taken
    off, so the bound never overstates. Inf where nothing is excluded.
    """
    coarse_shape = tuple(len(range(b.start, b.stop, st)) for b, st in zip(bbox, stride))
    found = Box.of_mask(exclude_mask)
    if found is None:
        return np.full(coarse_shape, np.inf, dtype=np.float32)
    st = np.array(stride)
    # Grid points of the organ's grid, extended in whole steps to cover the excluded voxels.
    start = np.array([b.start for b in bbox])
    first = start - st * np.ceil(np.maximum(start - np.array(found.origin), 0) / st).astype(int)
    stop_organ = start + st * (np.array(coarse_shape) - 1)
    last_found = np.array(found.origin) + np.array(found.shape) - 1
    last = stop_organ + st * np.ceil(np.maximum(last_found - stop_organ, 0) / st).astype(int)
    n_cells = (last - first) // st + 1
    # Cell of grid point c: voxels c - stride//2 .. c - stride//2 + stride - 1.
    lo = first - st // 2
    hi = lo + n_cells * st
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, np.array(exclude_mask.shape))
    block = np.zeros(tuple(int(n) for n in n_cells * st), dtype=bool)
    block[tuple(slice(a - b, c - b) for a, b, c in zip(src_lo, lo, src_hi))] = exclude_mask[
        tuple(slice(a, c) for a, c in zip(src_lo, src_hi))
    ]
    n0, n1, n2 = (int(n) for n in n_cells)
    pooled = block.reshape(n0, st[0], n1, st[1], n2, st[2]).any(axis=(1, 3, 5))
    coarse_spacing = tuple(float(s * k) for s, k in zip(spacing_mm, stride))
    dist = edt.edt(~pooled, anisotropy=coarse_spacing, parallel=1).astype(np.float32)
    slack = float(
        np.linalg.norm(st // 2 * np.array(spacing_mm))  # a voxel's offset in its cell
        + np.linalg.norm(st / 2.0 * np.array(spacing_mm))  # a centre's jitter
    )
    dist = np.maximum(dist - np.float32(slack), np.float32(0.0))
    offset = (start - first) // st
    return np.ascontiguousarray(
        dist[tuple(slice(int(o), int(o) + n) for o, n in zip(offset, coarse_shape))]
    )


def _vessel_clearance(vessels: np.ndarray, spacing_mm: Vec3) -> np.ndarray:
    """Distance (mm) to the nearest vessel voxel, computed on a 2x coarser grid (max-pooled, so
    thin vessels survive) and read back onto the grid of ``vessels``; inf where there are none."""
    if not vessels.any():
        return np.full(vessels.shape, np.inf, dtype=np.float32)
    pad = [(0, (-n) % 2) for n in vessels.shape]
    v = np.pad(vessels, pad)
    pooled = v.reshape(v.shape[0] // 2, 2, v.shape[1] // 2, 2, v.shape[2] // 2, 2).any(
        axis=(1, 3, 5)
    )
    dist = edt.edt(~pooled, anisotropy=tuple(2 * s for s in spacing_mm), parallel=1)
    dist = np.maximum(dist.astype(np.float32) - np.float32(0.5 * max(spacing_mm)), 0.0)
    index = np.ix_(*(np.arange(n) // 2 for n in vessels.shape))
    return dist[index]


def _measure_noise(
    image: np.ndarray,
    organ_mask: np.ndarray,
    bbox: tuple[slice, slice, slice],
    spacing_mm: Vec3,
    n_slabs: int = 5,
    *,
    tissue_hu: tuple[float, float] | None = None,
) -> float:
    """Robust std of the 2 mm high-pass residual on a few slices through the organ.

    The 3-D Gaussian is separable, so the residual of one slice needs only the weighted sum of
    its neighbouring slices followed by an in-plane filter, not a filtered slab. With
    ``tissue_hu`` (a hollow organ) the residual is taken on the mask's voxels in that range,
    from a low-pass of those voxels only
    (:func:`~tumorsynth.organs.context_hollow.tissue_residual`).
    """
    sigma = [NOISE_SIGMA_MM / s for s in spacing_mm]
    pad = _noise_reach(spacing_mm)
    offsets = np.arange(-pad, pad + 1)
    weights = np.exp(-0.5 * (offsets / sigma[2]) ** 2).astype(np.float32)
    weights /= weights.sum()
    erode = int(math.ceil(2 * NOISE_SIGMA_MM / min(spacing_mm[:2])))  # keep clear of organ edges
    k0, k1 = bbox[2].start, bbox[2].stop
    centres = np.unique(
        np.linspace(k0 + (k1 - k0) * 0.2, k0 + (k1 - k0) * 0.8, n_slabs).astype(int)
    )
    residuals = []
    for k in centres:
        ks = np.clip(k + offsets, 0, image.shape[2] - 1)
        if tissue_hu is not None:
            residuals.append(
                tissue_residual(image, organ_mask, bbox, (k, ks, weights), sigma, tissue_hu)
            )
            continue
        blurred_z = np.zeros(
            (bbox[0].stop - bbox[0].start, bbox[1].stop - bbox[1].start), dtype=np.float32
        )
        for w, kk in zip(weights, ks):
            blurred_z += w * image[bbox[0], bbox[1], kk]
        low = ndi.gaussian_filter(blurred_z, sigma=sigma[:2], truncate=3.0)
        resid = image[bbox[0], bbox[1], k].astype(np.float32) - low
        inner = ndi.binary_erosion(organ_mask[bbox[0], bbox[1], k], iterations=erode)
        residuals.append(resid[inner])
    values = np.concatenate(residuals) if residuals else np.zeros(0, np.float32)
    if values.size < 50:
        return 10.0
    return robust_std(values)


def _noise_reach(spacing_mm: Vec3) -> int:
    """Slices on either side of a measured slice that its noise residual reads."""
    sigma = NOISE_SIGMA_MM / spacing_mm[2]
    return int(math.ceil(3 * sigma))  # as 3 * sigma: 3 * 2 / s may round across an integer


def analysed_region(
    bbox: tuple[slice, slice, slice], spacing_mm: Vec3, shape: tuple[int, ...]
) -> tuple[slice, slice, slice]:
    """The part of the image :meth:`OrganContext.build` reads for an organ whose bounding box is
    ``bbox``: the box, and the slices next to it that the noise measurement filters along z.
    Two scans that agree here (and in the masks) have the same analysis."""
    pad = _noise_reach(spacing_mm)
    z = slice(max(0, bbox[2].start - pad), min(shape[2], bbox[2].stop + pad))
    return bbox[0], bbox[1], z


def robust_std(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of ``values``: their std if they are Gaussian,
    unmoved by the few outliers (vessels, edges) a noise measurement picks up.

    Written out rather than ``scipy.stats.median_abs_deviation``: importing ``scipy.stats``
    costs 0.4 s and 44 MB in every process that synthesizes (measured: ``import
    tumorsynth.pipelines`` 0.39 s without it, 1.03 s with it), for one line of numpy.

    Examples
    --------
    >>> robust_std(np.array([-1.0, 0.0, 1.0, 100.0]))
    1.4826
    """
    return float(_MAD_TO_SD * np.median(np.abs(values - np.median(values))))
