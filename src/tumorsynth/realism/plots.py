"""Figures of a realism study: feature distributions, ROC curves, a tumor montage and a t-SNE map.

Each function writes one PNG (atomically) and returns its path. matplotlib (optional extra
``tumorsynth[plots]``) and scikit-learn are imported inside the functions; figures are drawn on
matplotlib's Agg canvas without pyplot (:mod:`tumorsynth.evaluation.plots`), so no global backend
is switched and nothing needs a display. CT slices are windowed with
:func:`tumorsynth.previews.window_to_uint8` and shown in the radiological convention of
:mod:`tumorsynth.previews`: patient anterior up, patient right on the image left.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from nibabel.orientations import io_orientation
from scipy import ndimage as ndi

from tumorsynth.errors import InputError
from tumorsynth.evaluation.plots import new_figure, save_figure
from tumorsynth.previews import padded_plane, window_to_uint8

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tumorsynth.realism.c2st import C2STResult
    from tumorsynth.realism.features import TumorFeatures

__all__ = [
    "BASELINE_SETS",
    "MontageTile",
    "plot_feature_distributions",
    "plot_montage",
    "plot_roc",
    "plot_tsne",
    "tumor_slice",
]

#: Feature sets that describe the scans rather than the tumors (dashed in the ROC plot).
BASELINE_SETS = ("host_only", "scan_indicator")

#: One montage tile: an axial slice in HU (rows anterior to posterior, columns patient right to
#: left, square pixels), its caption, and optionally the tumor mask of the slice (outlined).
MontageTile = tuple[np.ndarray, str] | tuple[np.ndarray, str, "np.ndarray | None"]

_REAL_COLOR = "#4c72b0"
_SYNTHETIC_COLOR = "#dd8452"
_AIR_HU = -1000.0
_UNITS = {"_hu": "HU", "_mm": "mm", "_mm2": "mm²", "_mm3": "mm³", "_ml": "mL", "_cm2": "cm²"}


def plot_feature_distributions(
    path: str | os.PathLike[str],
    X: np.ndarray,
    names: Sequence[str],
    is_synthetic: np.ndarray | Sequence[bool],
    features: Sequence[str],
    descriptions: Mapping[str, str] | None = None,
) -> Path:
    """Small multiples, one per feature: real and synthetic values as box plots with every value
    drawn on top (jittered points).

    Parameters
    ----------
    path
        PNG file to write.
    X
        Feature matrix ``(n_samples, n_features)``; NaN (a feature a tumor lacks) is left out of
        its panel, and each panel says how many values it shows.
    names
        Column names of ``X``.
    is_synthetic
        One flag per row of ``X``.
    features
        Names to show, in order (e.g. the largest differences first); at most 16 are drawn.
    descriptions
        Feature name -> words (with the unit), printed under the panel title.
    """
    matrix = np.asarray(X, dtype=float)
    flags = np.asarray(is_synthetic, dtype=bool)
    names = list(names)
    if matrix.ndim != 2 or matrix.shape[1] != len(names) or flags.shape != (matrix.shape[0],):
        raise InputError(
            "X",
            f"expected an (n, {len(names)}) matrix with one is_synthetic flag per row, found "
            f"X {matrix.shape} and {flags.shape[0]} flags",
        )
    unknown = [f for f in features if f not in names]
    if unknown:
        raise InputError("features", f"not columns of X: {unknown}", fix="pick from names")
    shown = list(features)[:16]
    descriptions = descriptions or {}
    n_cols = max(1, min(4, len(shown)))
    n_rows = max(1, math.ceil(len(shown) / n_cols))
    figure = new_figure(3.1 * n_cols, 3.0 * n_rows + 0.6)
    jitter = np.random.default_rng(0)
    for k, feature in enumerate(shown):
        axes = figure.add_subplot(n_rows, n_cols, k + 1)
        column = matrix[:, names.index(feature)]
        groups = [column[~flags], column[flags]]
        groups = [values[np.isfinite(values)] for values in groups]
        if any(len(values) for values in groups):
            filled = [values if len(values) else np.array([np.nan]) for values in groups]
            axes.boxplot(filled, widths=0.5, showfliers=False, medianprops={"color": "black"})
        for position, (values, color) in enumerate(
            zip(groups, (_REAL_COLOR, _SYNTHETIC_COLOR)), start=1
        ):
            offsets = jitter.uniform(-0.15, 0.15, size=len(values))
            axes.scatter(position + offsets, values, s=10, alpha=0.6, color=color, zorder=3)
        axes.set_xticks([1, 2])
        axes.set_xticklabels([f"real\n(n={len(groups[0])})", f"synthetic\n(n={len(groups[1])})"])
        axes.tick_params(labelsize=8)
        unit = _unit_of(feature)
        axes.set_ylabel(f"value ({unit})" if unit else "value", fontsize=8)
        title = feature
        if feature in descriptions:
            title += "\n" + textwrap.fill(textwrap.shorten(descriptions[feature], 126), 42)
        axes.set_title(title, fontsize=8)
    if not shown:
        axes = figure.add_subplot(1, 1, 1)
        axes.text(0.5, 0.5, "no features to show", ha="center", transform=axes.transAxes)
        axes.set_axis_off()
    figure.suptitle(
        "Real vs synthetic tumors: the features that differ most (box: quartiles; points: tumors)",
        fontsize=10,
    )
    figure.tight_layout()
    return save_figure(figure, path)


def plot_roc(
    path: str | os.PathLike[str],
    results: Sequence[C2STResult],
    is_synthetic: np.ndarray | Sequence[bool],
) -> Path:
    """Pooled out-of-fold ROC curves of the classifier two-sample test, one panel per classifier.

    Parameters
    ----------
    path
        PNG file to write.
    results
        One result per feature set and classifier; each curve is drawn from its ``oof_score``
        (P(synthetic) per sample, pooled over folds and averaged over repeats: the curve's own
        area can differ from the within-fold AUC). The legend gives the result's AUC (within
        folds) with its interval and p-value; baselines (host only, scan indicator) are dashed.
    is_synthetic
        The true label of each sample, in the order of ``oof_score``.
    """
    from sklearn.metrics import roc_curve

    flags = np.asarray(is_synthetic, dtype=bool)
    if flags.all() or not flags.any():
        raise InputError(
            "is_synthetic", f"expected real and synthetic samples, found {flags.sum()} of "
            f"{flags.size} synthetic"
        )  # fmt: skip
    for result in results:
        if len(result.oof_score) != flags.size:
            raise InputError(
                f"C2STResult({result.feature_set}, {result.classifier})",
                f"expected one out-of-fold score per sample ({flags.size}), found "
                f"{len(result.oof_score)}",
            )
    classifiers = list(dict.fromkeys(r.classifier for r in results)) or ["(none)"]
    sets = list(dict.fromkeys(r.feature_set for r in results))
    per_panel = max([sum(r.classifier == c for r in results) for c in classifiers] + [0])
    legend_in = 0.22 * (per_panel + 1) + 0.2
    height_in = 5.4 + legend_in
    figure = new_figure(5.2 * len(classifiers), height_in)
    for k, classifier in enumerate(classifiers):
        axes = figure.add_subplot(1, len(classifiers), k + 1)
        axes.plot([0, 1], [0, 1], color="0.6", linewidth=1, linestyle=":", label="chance (0.5)")
        for result in (r for r in results if r.classifier == classifier):
            scores = np.asarray(result.oof_score, dtype=float)
            finite = np.isfinite(scores)
            fpr, tpr, _ = roc_curve(flags[finite], scores[finite])
            baseline = result.feature_set in BASELINE_SETS
            axes.plot(
                fpr,
                tpr,
                color=f"C{sets.index(result.feature_set) % 10}",
                linewidth=1.6,
                linestyle="--" if baseline else "-",
                label=(
                    f"{result.feature_set}{' (baseline)' if baseline else ''}: "
                    f"{_fmt(result.auc)} [{_fmt(result.auc_low)}, {_fmt(result.auc_high)}], "
                    f"p {_fmt_p(result.p_value)}"
                ),
            )
        axes.set_xlim(-0.01, 1.01)
        axes.set_ylim(-0.01, 1.01)
        axes.set_aspect("equal")
        axes.set_xlabel("false-positive rate (real called synthetic)")
        axes.set_ylabel("true-positive rate (synthetic called synthetic)")
        axes.set_title(f"{classifier}: AUC [95% interval], permutation p", fontsize=9)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, frameon=False)
    n_real, n_synthetic = int((~flags).sum()), int(flags.sum())
    figure.suptitle(
        f"Classifier two-sample test, out-of-fold ROC, legend AUC within folds ({n_real} real, "
        f"{n_synthetic} "
        "synthetic samples)",
        fontsize=10,
    )
    # Room for the legends under the axes (tight_layout would squeeze the legends out).
    figure.subplots_adjust(
        left=0.1 / len(classifiers) + 0.02, right=0.98, top=1 - 0.5 / height_in,
        bottom=(legend_in + 0.45) / height_in, wspace=0.3,
    )  # fmt: skip
    return save_figure(figure, path)


def tumor_slice(
    image: np.ndarray,
    label_mask: np.ndarray,
    row: TumorFeatures,
    margin_mm: float,
    spacing_mm: Sequence[float],
    *,
    affine: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The axial slice through a tumor's centre, cropped to its bounding box plus a margin.

    Parameters
    ----------
    image
        CT volume in HU, voxel axes (i, j, k).
    label_mask
        Tumor voxels on the same grid (boolean, or nonzero = tumor); only the slice is read.
    row
        The tumor: ``center_vox`` picks the slice (nearest voxel), ``bbox`` the crop.
    margin_mm
        Tissue shown around the bounding box on each side (mm); parts outside the scan are
        shown as air.
    spacing_mm
        Voxel size (mm) along i, j, k.
    affine
        Voxel-to-world (RAS+) affine; it says which voxel axis is axial and how to flip the slice.
        ``None``: the voxel axes are taken to be RAS, as in :mod:`tumorsynth.previews`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(hu, mask)``: the slice in HU (float32) and the tumor mask (bool), rows from anterior to
        posterior, columns from patient right to left, resampled to square pixels of the finer
        in-plane spacing, ready for :func:`plot_montage`.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> ct = np.zeros((20, 10, 5)); tumor = np.zeros(ct.shape, bool); tumor[8:12, 4:6, 2] = True
    >>> row = SimpleNamespace(center_vox=(9.5, 4.5, 2.0), bbox=((8, 12), (4, 6), (2, 3)))
    >>> hu, mask = tumor_slice(ct, tumor, row, 2.0, (1.0, 2.0, 3.0))
    >>> hu.shape, int(mask.sum())
    ((8, 8), 16)
    """
    if image.ndim != 3 or image.shape != label_mask.shape:
        raise InputError(
            "label_mask",
            f"expected a 3-D image and a mask of the same shape, found {image.shape} and "
            f"{label_mask.shape}",
        )
    spacing = [float(s) for s in spacing_mm]
    if len(spacing) != 3 or not all(s > 0 for s in spacing):
        raise InputError("spacing_mm", f"expected three voxel sizes > 0 mm, found {spacing_mm}")
    if not (margin_mm >= 0 and math.isfinite(margin_mm)):
        raise InputError("margin_mm", f"expected a margin >= 0 mm, found {margin_mm}")
    ornt = (
        io_orientation(np.asarray(affine, dtype=float))
        if affine is not None
        else np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    )
    if not np.all(np.isfinite(ornt)):
        raise InputError("affine", f"cannot tell the voxel axes' directions from {affine}")
    axis_of_world = [int(np.flatnonzero(ornt[:, 0] == w)[0]) for w in range(3)]
    toward_ras = [bool(sign > 0) for sign in ornt[:, 1]]
    col_axis, row_axis, fixed = axis_of_world  # columns R-L, rows A-P, slice along S-I
    index = math.floor(float(row.center_vox[fixed]) + 0.5)
    if not 0 <= index < image.shape[fixed]:
        raise InputError(
            "row.center_vox",
            f"centre {tuple(row.center_vox)} lies outside the image of shape {image.shape} "
            f"along voxel axis {fixed}",
            fix="pass the image the tumor was measured on",
        )
    spans = []
    for axis in (row_axis, col_axis):
        pad = math.ceil(margin_mm / spacing[axis])
        spans.append((int(row.bbox[axis][0]) - pad, int(row.bbox[axis][1]) + pad, 0.0, 0.0))
    hu = padded_plane(image, fixed, index, row_axis, col_axis, spans, _AIR_HU)
    mask = padded_plane(label_mask, fixed, index, row_axis, col_axis, spans, 0) != 0
    hu = hu.astype(np.float32)
    # Anterior up (rows toward P), patient right on the left (columns toward L).
    for dim, axis in enumerate((row_axis, col_axis)):
        if toward_ras[axis]:
            hu, mask = np.flip(hu, dim), np.flip(mask, dim)
    pixel = min(spacing[row_axis], spacing[col_axis])
    zoom = (spacing[row_axis] / pixel, spacing[col_axis] / pixel)
    if zoom != (1.0, 1.0):
        hu = ndi.zoom(hu, zoom, order=1, mode="nearest", grid_mode=True)
        mask = ndi.zoom(mask.astype(np.uint8), zoom, order=0, mode="nearest", grid_mode=True) > 0
    return np.ascontiguousarray(hu), np.ascontiguousarray(mask)


def plot_montage(
    path: str | os.PathLike[str],
    real: Sequence[MontageTile],
    synthetic: Sequence[MontageTile],
    *,
    level_hu: float = 40.0,
    width_hu: float = 400.0,
    per_row: int = 6,
    title: str = "most synthetic-looking synthetic tumors vs real tumors",
) -> Path:
    """Two blocks of axial tumor slices: synthetic tumors on top, real ones below, with captions.

    Parameters
    ----------
    path
        PNG file to write.
    real, synthetic
        Tiles ``(hu, caption)`` or ``(hu, caption, mask)``: a 2-D slice in HU (rows anterior to
        posterior, columns patient right to left, square pixels: :func:`tumor_slice` cuts them),
        a caption (case, volume, classifier score; ``\\n`` breaks lines) and the tumor mask of the
        slice, outlined in red when given. Each slice is shown whole, scaled to its tile.
    level_hu, width_hu
        Display window (HU): soft tissue W400 L40 (default) or liver W150 L60.
    per_row
        Tiles per row; longer blocks wrap.
    title
        Figure title; the window is added to it.
    """
    if per_row < 1:
        raise InputError("per_row", f"expected at least 1 tile per row, found {per_row}")
    window_to_uint8(np.zeros(1), level_hu, width_hu)  # validates the window
    blocks = [("synthetic", list(synthetic)), ("real", list(real))]
    for name, tiles in blocks:
        for k, tile in enumerate(tiles):
            hu = np.asarray(tile[0])
            mask = tile[2] if len(tile) > 2 else None
            if hu.ndim != 2 or hu.size == 0 or (mask is not None and mask.shape != hu.shape):
                raise InputError(
                    f"{name}[{k}]",
                    f"expected a non-empty 2-D slice (and a mask of its shape), found "
                    f"{hu.shape}{'' if mask is None else f' and mask {mask.shape}'}",
                )
    n_cols = max(1, min(per_row, max(len(real), len(synthetic), 1)))
    rows_of = [max(1, math.ceil(len(tiles) / n_cols)) for _, tiles in blocks]
    tile_in = 2.0
    figure = new_figure(tile_in * n_cols, (tile_in + 0.55) * sum(rows_of) + 0.7)
    grid = figure.add_gridspec(sum(rows_of), n_cols)
    start = 0
    for (name, tiles), n_rows in zip(blocks, rows_of):
        color = _SYNTHETIC_COLOR if name == "synthetic" else _REAL_COLOR
        for k in range(n_rows * n_cols):
            axes = figure.add_subplot(grid[start + k // n_cols, k % n_cols])
            axes.set_xticks([])
            axes.set_yticks([])
            if k >= len(tiles):
                axes.set_axis_off()
                if not tiles and k == 0:
                    axes.text(0.05, 0.5, f"no {name} tumors", transform=axes.transAxes)
                continue
            _show_tile(axes, tiles[k], level_hu, width_hu)
            for spine in axes.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.5)
            if k % n_cols == 0:
                axes.set_ylabel(name, fontsize=10, color=color, fontweight="bold")
        start += n_rows
    explanation = (
        "Axial slices through the tumor centres (anterior up, patient right on the left), each "
        "cropped to its tumor's box plus a margin, so scales differ; "
        f"window W{width_hu:g} L{level_hu:g} HU; red: tumor outline."
    )
    chars = max(40, int(tile_in * n_cols / 0.075))
    figure.suptitle(
        textwrap.fill(title, chars) + "\n" + textwrap.fill(explanation, int(chars * 1.1)),
        fontsize=9,
    )
    figure.tight_layout()
    return save_figure(figure, path)


def plot_tsne(
    path: str | os.PathLike[str],
    embedding: np.ndarray,
    organs: Sequence[str],
    sources: Sequence[str],
) -> Path:
    """Scatter of a 2-D t-SNE embedding: colour by organ, marker by real (circle) or synthetic
    (triangle).

    Parameters
    ----------
    path
        PNG file to write.
    embedding
        ``(n, 2)`` coordinates (unitless).
    organs, sources
        One organ name and one source (``"real"`` or ``"synthetic"``) per point.
    """
    points = np.asarray(embedding, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2 or not len(organs) == len(sources) == len(points):
        raise InputError(
            "embedding",
            f"expected (n, 2) coordinates with one organ and one source per point, found "
            f"{points.shape}, {len(organs)} organs and {len(sources)} sources",
        )
    from matplotlib.lines import Line2D

    figure = new_figure(6.4, 5.4)
    axes = figure.add_subplot(1, 1, 1)
    organ_names = sorted(set(organs))
    markers = {"real": "o", "synthetic": "^"}
    organ_arr, source_arr = np.asarray(organs), np.asarray(sources)
    for i, organ in enumerate(organ_names):
        for source in sorted(set(sources)):
            keep = (organ_arr == organ) & (source_arr == source)
            if keep.any():
                axes.scatter(
                    points[keep, 0],
                    points[keep, 1],
                    s=28,
                    marker=markers.get(source, "s"),
                    color=f"C{i % 10}",
                    alpha=0.75,
                    edgecolors="black" if source == "synthetic" else "none",
                    linewidths=0.5,
                )
    handles = [
        Line2D([], [], marker="o", linestyle="", color=f"C{i % 10}", label=f"{organ} "
               f"({int((organ_arr == organ).sum())})")
        for i, organ in enumerate(organ_names)
    ]  # fmt: skip
    handles += [
        Line2D([], [], marker=markers.get(source, "s"), linestyle="", color="0.4",
               markeredgecolor="black" if source == "synthetic" else "none",
               label=f"{source} ({int((source_arr == source).sum())})")
        for source in sorted(set(sources))
    ]  # fmt: skip
    axes.legend(handles=handles, fontsize=8, loc="best", framealpha=0.9)
    axes.set_xlabel("t-SNE 1 (unitless)")
    axes.set_ylabel("t-SNE 2 (unitless)")
    axes.set_title(
        f"t-SNE of tumor features: {len(points)} tumors, colour = organ, marker = source",
        fontsize=10,
    )
    figure.tight_layout()
    return save_figure(figure, path)


def _show_tile(axes: Axes, tile: MontageTile, level_hu: float, width_hu: float) -> None:
    hu = np.asarray(tile[0], dtype=np.float32)
    axes.imshow(
        window_to_uint8(hu, level_hu, width_hu),
        cmap="gray",
        vmin=0,
        vmax=255,
        interpolation="bilinear",
    )
    mask = tile[2] if len(tile) > 2 else None
    if mask is not None and np.any(mask) and not np.all(mask):
        axes.contour(np.asarray(mask, dtype=float), levels=[0.5], colors="red", linewidths=0.8)
    axes.set_xlabel(str(tile[1]), fontsize=7)


def _unit_of(name: str) -> str:
    """The unit a feature's name ends with (``tumor_mean_hu`` -> ``HU``), or ``""``."""
    for suffix, unit in _UNITS.items():
        if name.lower().endswith(suffix):
            return unit
    return ""


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "n/a"


def _fmt_p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"
