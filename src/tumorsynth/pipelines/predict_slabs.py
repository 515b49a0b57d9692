"""Sliding-window segmentation whose memory stays a few times the CT's, however large the scan.

The steps are those of MONAI's ``Orientationd`` + ``Spacingd`` (:func:`~tumorsynth.models.
segmentors.resample_transforms`), ``sliding_window_inference`` (Gaussian blending) and the tracked
inverse of the spatial transforms, but nothing full-size is held in float32 or float64:

1. The network grid (RAS, the network's spacing) is read from MONAI's transforms run lazily, so
   its shape and affine are exactly those of training. Between that grid and the CT's own grid the
   voxel mapping is an axis permutation, flips, a scale and a shift per axis (:class:`GridMap`),
   so trilinear interpolation with edge values beyond the border (``grid_sample``'s ``border``
   padding) is three 1-D interpolations on a box of the source (:func:`resample_box`).
2. Windows are placed as ``sliding_window_inference`` places them (same padding, scan interval,
   Gaussian importance map) and run in order of their z start. The network input of each z slab
   is resampled from the CT when its windows run; weighted logits are summed in a rolling float32
   buffer one patch deep, and each z range that no later window reaches is finished (divided by
   the summed weights, softmax) into the one full-size buffer: class probabilities in float16 on
   the network grid, on the network's device (:func:`window_probabilities`).
3. The probabilities go back onto the CT's grid in slabs along its last voxel axis, and each slab
   is reduced to the label of the most probable class (argmax) and, on request, class
   probabilities as ``round(255 * p)`` in uint8 (:func:`segment_in_slabs`).

Compared with the full-size MONAI path, only float16 rounding of the probabilities (at most
2.5e-4 each) can change a label: where the two largest class probabilities are that close.

Peak memory: the CT as loaded, float16 probabilities on the network grid (2 bytes per class per
network voxel, on the device), one uint8 volume per output, and slabs of about ``slab_voxels``
voxels (:data:`SLAB_VOXELS`) -- not several full-size float copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import compute_importance_map, dense_patch_slices, get_valid_patch_size

from tumorsynth.models.segmentors import resample_transforms

__all__ = [
    "SLAB_VOXELS",
    "GridMap",
    "SlabOutput",
    "network_grid",
    "resample_box",
    "segment_in_slabs",
    "window_probabilities",
]

#: Voxels per slab (resampling back, network input chunks): 8 Mi, 32 slices of 512 x 512.
SLAB_VOXELS = 2**23

Box = tuple[slice, slice, slice]


def network_grid(
    shape: Sequence[int], affine: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of the grid a segmentor works on, for a CT of ``shape`` and ``affine``:
    :func:`~tumorsynth.models.segmentors.resample_transforms` run lazily (no voxel touched)."""
    placeholder = torch.zeros(()).expand(1, *shape)  # the shape without the memory
    data = {"image": MetaTensor(placeholder, affine=torch.as_tensor(affine, dtype=torch.float64))}
    for transform in resample_transforms(spacing_mm):
        transform.lazy = True
        data = transform(data)
    pending = data["image"]
    net_affine = np.asarray(pending.peek_pending_affine(), dtype=np.float64)
    net_shape = tuple(int(n) for n in pending.peek_pending_shape())
    return net_affine, net_shape  # type: ignore[return-value]


@dataclass(frozen=True)
class GridMap:
    """Where the voxels of a destination grid fall on a source grid that differs from it by an
    axis permutation, flips, a scale and a shift per axis: along source axis ``axes[d]`` the
    coordinate of destination index ``i`` (axis ``d``) is ``scale[d] * i + offset[d]``."""

    axes: tuple[int, int, int]
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    source_shape: tuple[int, int, int]

    @classmethod
    def between(
        cls, dst_affine: np.ndarray, src_affine: np.ndarray, source_shape: Sequence[int]
    ) -> GridMap:
        """The map between two grids given by their voxel-to-mm affines."""
        voxels = np.linalg.solve(np.asarray(src_affine, float), np.asarray(dst_affine, float))
        linear = voxels[:3, :3]
        axes = tuple(int(np.argmax(np.abs(linear[:, d]))) for d in range(3))
        scale = tuple(float(linear[axes[d], d]) for d in range(3))
        residue = linear.copy()
        for d in range(3):
            residue[axes[d], d] = 0.0
        if sorted(axes) != [0, 1, 2] or np.abs(residue).max() > 1e-6 * max(map(abs, scale)):
            raise RuntimeError(f"grids differ by more than axis flips and scales: {voxels}")
        offset = tuple(float(voxels[axes[d], 3]) for d in range(3))
        shape = tuple(int(n) for n in source_shape)
        return cls(axes, scale, offset, shape)  # type: ignore[arg-type]

    def neighbours(self, d: int, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lower and upper source neighbours (along ``axes[d]``) of destination ``indices`` on
        axis ``d`` and the weight of the upper one; coordinates beyond the edge take its value."""
        n = self.source_shape[self.axes[d]]
        coords = np.clip(self.scale[d] * indices + self.offset[d], 0.0, n - 1.0)
        lower = np.minimum(np.floor(coords), max(n - 2, 0)).astype(np.int64)
        return lower, np.minimum(lower + 1, n - 1), coords - lower


def resample_box(
    load: Callable[[Box], torch.Tensor], grid: GridMap, ranges: Sequence[range]
) -> torch.Tensor:
    """Trilinear interpolation of a source at the destination voxels in ``ranges`` (one range
    per destination axis), as a ``(C, len(r0), len(r1), len(r2))`` float32 tensor.

    ``load(box)`` returns the source's voxels in ``box`` (slices in source axis order) as a
    ``(C, ...)`` float32 tensor; only the box the destination voxels need is asked for.
    """
    weights = [grid.neighbours(d, np.arange(r.start, r.stop)) for d, r in enumerate(ranges)]
    box: list[slice] = [slice(0)] * 3
    for d, (lower, upper, _) in enumerate(weights):
        box[grid.axes[d]] = slice(int(lower.min()), int(upper.max()) + 1)
    block = load((box[0], box[1], box[2])).permute(0, *(1 + a for a in grid.axes))
    # shrink first: the axis whose output is smallest relative to its input goes first
    for d in sorted(range(3), key=lambda d: len(ranges[d]) / block.shape[1 + d]):
        lower, upper, frac = weights[d]
        start = box[grid.axes[d]].start
        low = _take(block, 1 + d, lower - start)
        if not frac.any():
            block = low
            continue
        high = _take(block, 1 + d, upper - start)
        shape = [1, 1, 1, 1]
        shape[1 + d] = -1
        weight = torch.as_tensor(frac, dtype=torch.float32, device=block.device).reshape(shape)
        block = torch.lerp(low, high, weight)
    return block


def _take(block: torch.Tensor, axis: int, index: np.ndarray) -> torch.Tensor:
    """``block.index_select(axis, index)`` by indexing, which is 10x faster on CPU for inner
    axes."""
    position: list[slice | torch.Tensor] = [slice(None)] * axis
    position.append(torch.as_tensor(index, device=block.device))
    return block[tuple(position)]


def _scan_interval(padded: Sequence[int], roi: Sequence[int], overlap: float) -> list[int]:
    """``sliding_window_inference``'s steps: ``int(roi * (1 - overlap))``, at least 1, or the
    whole axis when the window spans it."""
    return [
        r if r == p else max(int(r * (1 - overlap)), 1) for p, r in zip(padded, roi, strict=True)
    ]


def window_probabilities(
    network_input: Callable[[int, int], torch.Tensor],
    shape: Sequence[int],
    predictor: Callable[[torch.Tensor], torch.Tensor],
    roi: Sequence[int],
    *,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Class probabilities ``(C, *shape)`` in float16 on ``device`` from Gaussian-blended
    sliding windows, as MONAI's ``sliding_window_inference(..., mode="gaussian")`` followed by a
    softmax over classes would give them, in float32 only one patch deep along z.

    ``network_input(z0, z1)`` returns the network's input for slices ``z0:z1`` of the grid
    (``(X, Y, z1 - z0)`` float32 on ``device``); ``predictor`` maps a ``(B, 1, *roi)`` batch to
    ``(B, C, *roi)`` logits.
    """
    roi = [int(r) for r in roi]
    padded = [max(int(n), r) for n, r in zip(shape, roi, strict=True)]
    pad = [(p - int(n)) // 2 for p, n in zip(padded, shape, strict=True)]  # as MONAI pads
    windows = dense_patch_slices(padded, roi, _scan_interval(padded, roi, overlap))
    weight = compute_importance_map(
        get_valid_patch_size(padded, roi), mode="gaussian", device=device, dtype=torch.float32
    )
    starts = sorted({w[2].start for w in windows})
    crop = (slice(pad[0], pad[0] + shape[0]), slice(pad[1], pad[1] + shape[1]))
    probs = scores = weights = None
    for g, z0 in enumerate(starts):
        slab = _padded_slab(network_input, shape, padded, pad, z0, z0 + roi[2], device)
        if scores is not None and weights is not None:  # carry what later windows add to
            step = z0 - starts[g - 1]
            scores = torch.cat([scores[..., step:], torch.zeros_like(scores[..., :step])], -1)
            weights = torch.cat([weights[..., step:], torch.zeros_like(weights[..., :step])], -1)
        group = [w for w in windows if w[2].start == z0]
        for first in range(0, len(group), sw_batch_size):
            batch = group[first : first + sw_batch_size]
            logits = predictor(torch.stack([slab[:, w[0], w[1]] for w in batch])).float()
            if logits.shape[2:] != weight.shape:
                raise RuntimeError(f"network output {tuple(logits.shape)} for windows of {roi}")
            if scores is None or weights is None or probs is None:
                classes = logits.shape[1]
                scores = torch.zeros((classes, padded[0], padded[1], roi[2]), device=device)
                weights = torch.zeros((padded[0], padded[1], roi[2]), device=device)
                probs = torch.empty((classes, *shape), dtype=torch.float16, device=device)
            for w, out in zip(batch, logits, strict=True):
                scores[:, w[0], w[1]] += out * weight
                weights[w[0], w[1]] += weight
        assert scores is not None and weights is not None and probs is not None
        done = (starts[g + 1] if g + 1 < len(starts) else padded[2]) - z0  # no window comes back
        lo, hi = max(z0, pad[2]), min(z0 + done, pad[2] + shape[2])  # padded z, inside the grid
        if hi > lo:
            local = slice(lo - z0, hi - z0)
            finished = scores[(slice(None), *crop, local)] / weights[(*crop, local)]
            probs[..., lo - pad[2] : hi - pad[2]] = torch.softmax(finished, dim=0).half()
    if probs is None:
        raise RuntimeError(f"no sliding window fits a grid of {tuple(shape)}")
    return probs


def _padded_slab(
    network_input: Callable[[int, int], torch.Tensor],
    shape: Sequence[int],
    padded: Sequence[int],
    pad: Sequence[int],
    z0: int,
    z1: int,
    device: torch.device | str,
) -> torch.Tensor:
    """Padded-grid slices ``z0:z1`` of the network input, ``(1, Xp, Yp, z1 - z0)``; the padding
    is 0, as ``sliding_window_inference`` pads (constant, ``cval=0``)."""
    lo, hi = max(z0 - pad[2], 0), min(z1 - pad[2], shape[2])
    if list(padded) == list(shape):
        return network_input(lo, hi)[None]
    slab = torch.zeros((1, padded[0], padded[1], z1 - z0), device=device)
    inner = (slice(pad[0], pad[0] + shape[0]), slice(pad[1], pad[1] + shape[1]))
    slab[(0, *inner, slice(lo + pad[2] - z0, hi + pad[2] - z0))] = network_input(lo, hi)
    return slab


@dataclass
class SlabOutput:
    """A segmentation on the CT's grid: ``labels`` (per voxel, the uint8 label of the most
    probable class) and, for each requested class, its probability as ``round(255 * p)``."""

    labels: np.ndarray
    probabilities: dict[int, np.ndarray]


def segment_in_slabs(
    image: np.ndarray,
    affine: np.ndarray,
    spacing_mm: Sequence[float],
    predictor: Callable[[torch.Tensor], torch.Tensor],
    window: Callable[[torch.Tensor], torch.Tensor],
    roi: Sequence[int],
    *,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: torch.device | str = "cpu",
    probabilities_of: Sequence[int] = (),
    labels: Sequence[int] | None = None,
    slab_voxels: int = SLAB_VOXELS,
) -> SlabOutput:
    """Segment a CT (``image``: 3-D, any real dtype, in HU; ``affine``: voxel to mm) with a
    network working at ``spacing_mm`` on windows of ``roi`` voxels, in slabs (module docstring).

    ``window`` maps resampled HU (a float32 tensor) to the network's input intensities;
    ``probabilities_of`` names the classes whose probabilities come back as uint8 volumes;
    ``labels`` gives the value each class is written as (default: its index).
    """
    device = torch.device(device)
    net_affine, net_shape = network_grid(image.shape, affine, spacing_mm)
    to_image = GridMap.between(net_affine, affine, image.shape)

    def load_image(box: Box) -> torch.Tensor:
        values = torch.from_numpy(np.array(image[box], dtype=np.float32))  # a copy: writable
        return values.to(device)[None]

    per_slice = image.size / image.shape[to_image.axes[2]]  # CT voxels per network z slice
    chunk = max(1, int((slab_voxels / per_slice - 2) / max(abs(to_image.scale[2]), 1e-6)))

    def network_input(z0: int, z1: int) -> torch.Tensor:
        parts = [
            resample_box(load_image, to_image, (range(net_shape[0]), range(net_shape[1]), z))
            for z in (range(c, min(c + chunk, z1)) for c in range(z0, z1, chunk))
        ]
        return window(torch.cat(parts, dim=-1)[0] if len(parts) > 1 else parts[0][0])

    probs = window_probabilities(
        network_input,
        net_shape,
        predictor,
        roi,
        overlap=overlap,
        sw_batch_size=sw_batch_size,
        device=device,
    )
    if labels is not None and len(labels) != probs.shape[0]:
        raise RuntimeError(f"the network predicts {probs.shape[0]} classes, not {len(labels)}")
    to_network = GridMap.between(affine, net_affine, net_shape)
    values = torch.as_tensor(
        list(labels) if labels is not None else range(256), dtype=torch.uint8, device=device
    )
    out_labels = np.empty(image.shape, dtype=np.uint8, order="F")
    kept = {c: np.empty(image.shape, dtype=np.uint8, order="F") for c in probabilities_of}
    depth = max(1, slab_voxels // (image.shape[0] * image.shape[1]))
    for k0 in range(0, image.shape[2], depth):
        ks = slice(k0, min(k0 + depth, image.shape[2]))
        ranges = (range(image.shape[0]), range(image.shape[1]), range(ks.start, ks.stop))
        slab = resample_box(lambda box: probs[(slice(None), *box)].float(), to_network, ranges)
        out_labels[..., ks] = values[_first_argmax(slab)].cpu().numpy()
        for c, out in kept.items():
            out[..., ks] = (slab[c] * 255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
        del slab
    return SlabOutput(out_labels, kept)


def _first_argmax(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(0)`` (the first class on ties) as int64; a loop over the few classes is
    5x faster on CPU than a reduction over the outer axis."""
    best = scores[0].clone()
    index = torch.zeros(scores.shape[1:], dtype=torch.int64, device=scores.device)
    for c in range(1, scores.shape[0]):
        higher = scores[c] > best
        index[higher] = c
        torch.maximum(best, scores[c], out=best)
    return index
