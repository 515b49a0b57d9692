"""Realism figures: valid PNGs of the expected size, slices cut and oriented right, bad input named."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from shared_data import require_data, require_module

from tumorsynth.errors import InputError
from tumorsynth.realism.plots import (
    plot_feature_distributions,
    plot_montage,
    plot_roc,
    plot_tsne,
    tumor_slice,
)

require_module("matplotlib")

DPI = 120  # tumorsynth.evaluation.plots draws at 120 dpi


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG that Pillow reads back whole; nothing else left in its folder."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        size = image.size
    assert not [p for p in path.parent.iterdir() if ".part" in p.name]
    return size


def c2st_result(feature_set: str, classifier: str, scores: np.ndarray, auc: float) -> object:
    """What plot_roc reads of a C2STResult."""
    return SimpleNamespace(
        feature_set=feature_set, classifier=classifier, auc=auc, auc_low=auc - 0.1,
        auc_high=min(auc + 0.1, 1.0), p_value=0.01, oof_score=tuple(float(s) for s in scores),
    )  # fmt: skip


def row(center: tuple[float, float, float], bbox: tuple[tuple[int, int], ...]) -> object:
    """What tumor_slice reads of a TumorFeatures row."""
    return SimpleNamespace(center_vox=center, bbox=bbox)


def test_feature_distributions_small_multiples(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    flags = np.r_[np.zeros(30, bool), np.ones(20, bool)]
    x = rng.normal(size=(50, 3)) + flags[:, None] * np.array([2.0, 0.0, 0.5])
    x[3, 1] = np.nan
    names = ["tumor_std_hu", "ctx_contrast_hu", "shape_sphericity"]
    out = plot_feature_distributions(
        tmp_path / "f.png", x, names, flags, names,
        descriptions={"tumor_std_hu": "standard deviation of the tumor's HU (HU)"},
    )  # fmt: skip
    assert out == tmp_path / "f.png"
    # three panels in one row (3.1 in each), 3.0 in + 0.6 in for the title, at 120 dpi
    assert png_size(out) == (round(3 * 3.1 * DPI), round(3.6 * DPI))
    with pytest.raises(InputError, match=r"not columns of X: \['nope'\]"):
        plot_feature_distributions(tmp_path / "g.png", x, names, flags, ["nope"])
    with pytest.raises(InputError, match="one is_synthetic flag per row"):
        plot_feature_distributions(tmp_path / "g.png", x, names, flags[:-1], names)
    assert not (tmp_path / "g.png").exists()


def test_roc_one_panel_per_classifier(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    flags = np.r_[np.zeros(40, bool), np.ones(40, bool)]
    good = flags + rng.normal(scale=0.6, size=80)
    chance = rng.uniform(size=80)
    results = [
        c2st_result(s, c, scores, auc)
        for c in ("logistic", "forest")
        for s, scores, auc in (("appearance", good, 0.85), ("host_only", chance, 0.5))
    ]
    out = plot_roc(tmp_path / "roc.png", results, flags)
    # two panels, legends of 3 entries (chance + 2 sets) below them
    assert png_size(out) == (round(2 * 5.2 * DPI), round((5.4 + 0.22 * 3 + 0.2) * DPI))
    short = [c2st_result("all", "logistic", good[:10], 0.8)]
    with pytest.raises(InputError, match=r"one out-of-fold score per sample \(80\), found 10"):
        plot_roc(tmp_path / "bad.png", short, flags)
    with pytest.raises(InputError, match="expected real and synthetic samples"):
        plot_roc(tmp_path / "bad.png", results, np.ones(80, bool))


def test_tumor_slice_crops_orients_and_squares_pixels() -> None:
    # i runs toward patient left, j toward posterior (LPS, like the IRCAD NIfTIs), k superior.
    ct = np.zeros((30, 20, 8), dtype=np.int16)
    ct[:, :, :] = np.arange(30, dtype=np.int16)[:, None, None]  # HU = i
    mask = np.zeros(ct.shape, bool)
    mask[10:14, 6:9, 3:6] = True
    mask[10, 6, 3] = False  # a corner missing on the centre slice's neighbour only
    lps = np.diag([-1.0, -1.0, 2.0, 1.0])
    tumor = row((11.5, 7.0, 4.0), ((10, 14), (6, 9), (3, 6)))
    hu, cut = tumor_slice(ct, mask, tumor, 2.0, (1.0, 1.0, 2.0), affine=lps)
    # rows: j (A-P) 6-2..9+2 -> 7 rows; columns: i (R-L) 10-2..14+2 -> 8 columns
    assert hu.shape == cut.shape == (7, 8) and hu.dtype == np.float32
    assert cut.sum() == 4 * 3 and cut[2:5, 2:6].all()
    # LPS: i already runs toward patient left, so columns keep their order (right on the left)
    assert hu[0].tolist() == list(range(8, 16))
    ras = np.diag([1.0, 1.0, 2.0, 1.0])
    hu_ras, _ = tumor_slice(ct, mask, tumor, 2.0, (1.0, 1.0, 2.0), affine=ras)
    assert hu_ras[0].tolist() == list(range(15, 7, -1))  # RAS: i toward right, flipped
    # anisotropic in-plane pixels -> square pixels of the finer spacing; outside the scan: air
    wide, wide_mask = tumor_slice(ct, mask, tumor, 12.0, (2.0, 1.0, 2.0), affine=lps)
    assert wide.shape[1] == 2 * (4 + 2 * 6) and wide.min() == -1000.0
    assert wide_mask.sum() == 2 * 4 * 3


def test_tumor_slice_bad_input() -> None:
    ct, mask = np.zeros((10, 10, 4)), np.zeros((10, 10, 4), bool)
    with pytest.raises(InputError, match="outside the image"):
        tumor_slice(ct, mask, row((5.0, 5.0, 9.0), ((4, 6),) * 3), 1.0, (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="same shape"):
        tumor_slice(ct, mask[:, :, :2], row((5.0, 5.0, 1.0), ((4, 6),) * 3), 1.0, (1.0,) * 3)


def test_montage_two_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tiles = []
    for k in range(3):
        hu = rng.normal(60, 15, size=(40 + 5 * k, 50)).astype(np.float32)
        mask = np.zeros(hu.shape, bool)
        mask[12:28, 15:35] = True
        hu[mask] -= 40
        tiles.append((hu, f"case{k} #1\n{2.5 * k:.1f} mL, score 0.9", mask))
    out = plot_montage(tmp_path / "m.png", tiles[:2], [tiles[2][:2], *tiles], per_row=3)
    # 3 columns of 2 in; synthetic block 2 rows, real block 1 row, 2.55 in each, + 0.7 in title
    assert png_size(out) == (round(3 * 2.0 * DPI), round((3 * 2.55 + 0.7) * DPI))
    with pytest.raises(InputError, match=r"synthetic\[0\]: expected a non-empty 2-D slice"):
        plot_montage(tmp_path / "bad.png", tiles, [(np.zeros(5), "x")])
    with pytest.raises(InputError, match="window width"):
        plot_montage(tmp_path / "bad.png", tiles, tiles, width_hu=0)


def test_tsne_colours_and_markers(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    embedding = rng.normal(size=(24, 2)) + np.repeat([[0, 0], [5, 0], [0, 5]], 8, axis=0)
    organs = ["liver"] * 8 + ["kidney"] * 8 + ["pancreas"] * 8
    sources = ["real", "synthetic"] * 12
    out = plot_tsne(tmp_path / "t.png", embedding, organs, sources)
    assert png_size(out) == (round(6.4 * DPI), round(5.4 * DPI))
    with pytest.raises(InputError, match="one organ and one source per point"):
        plot_tsne(tmp_path / "bad.png", embedding, organs[:-1], sources)


@pytest.mark.realdata
def test_montage_of_ircad_117_tumors(tmp_path: Path) -> None:
    """IRCAD 1.17's two real liver tumors: slices through their centres, mask as in the label."""
    import cc3d

    from tumorsynth.io import load_image, load_label

    folder = require_data("ircadb01_p17")
    image = load_image(folder / "ircadb01_p17_ct.nii.gz")
    label = load_label(folder / "ircadb01_p17_label.nii.gz")
    components = cc3d.connected_components(label.array == 2, connectivity=26)
    tiles = []
    for k in range(1, int(components.max()) + 1):
        tumor = components == k
        where = np.nonzero(tumor)
        center = tuple(float(np.mean(w)) for w in where)
        bbox = tuple((int(w.min()), int(w.max()) + 1) for w in where)
        hu, mask = tumor_slice(
            image.array, tumor, row(center, bbox), 10.0, image.spacing_mm, affine=image.affine
        )
        index = math.floor(center[2] + 0.5)
        assert mask.sum() == tumor[:, :, index].sum()  # square pixels already: no resampling
        # a hypodense tumor in brighter liver: mean HU inside below the rim around it
        assert hu[mask].mean() < hu[~mask & (hu > 0)].mean()
        volume_ml = tumor.sum() * np.prod(image.spacing_mm) / 1000.0
        tiles.append((hu, f"1.17 #{k}\n{volume_ml:.1f} mL", mask))
    assert len(tiles) == 2
    out = plot_montage(tmp_path / "ircad.png", tiles, tiles[::-1], level_hu=60, width_hu=150)
    assert png_size(out) == (round(2 * 2.0 * DPI), round((2 * 2.55 + 0.7) * DPI))
