"""Per-tumor realism features on small analytic volumes (64^3, 1 mm) and on IRCAD 1.17."""

from __future__ import annotations

import json
import math
import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.special import erf
from shared_data import require_data

import tumorsynth.realism.features as features_module
from tumorsynth.errors import InputError
from tumorsynth.io import load_image, load_label, resolve_label_map
from tumorsynth.realism import (
    CaseInput,
    FeatureSettings,
    NoTumorWarning,
    TumorFeatures,
    case_features,
    extract_features,
    feature_family,
    shape_features,
)

LIVER = resolve_label_map({"liver": 1, "liver_tumor": 2})
OWN = FeatureSettings(radiomics=False)
N = 64


def radius_grid(centre=(31.5, 31.5, 31.5)):
    g = (
        np.indices((N, N, N), dtype=np.float32)
        - np.asarray(centre, np.float32)[:, None, None, None]
    )
    return np.sqrt((g**2).sum(axis=0))


def liver_with_tumor(tumor_values, host_noise=10.0, radius=12.0, seed=0):
    """A 64^3 liver (100 HU + noise) holding one spherical tumor; ``tumor_values(r, rng)`` gives
    the tumor's HU (whole grid; only the tumor is used)."""
    rng = np.random.default_rng(seed)
    r = radius_grid()
    label = np.where(r < 30, 1, 0).astype(np.uint8)
    label[r < radius] = 2
    image = 100.0 + rng.normal(0, host_noise, r.shape)
    image = np.where(r < radius, tumor_values(r, rng), image)
    image[r >= 30] = -1000.0  # air, so the files read as CT
    return image.astype(np.float32), label


def only_row(image, label, settings=OWN, **kw):
    rows = case_features(image, label, (1.0, 1.0, 1.0), label_map=LIVER, settings=settings, **kw)
    assert len(rows) == 1
    return rows[0]


def test_sphere_is_round_and_a_bumpy_object_is_not():
    g = np.indices((N, N, N)) - 31.5
    r = np.sqrt((g**2).sum(axis=0))
    theta = np.arccos(np.clip(g[2] / np.maximum(r, 1e-6), -1, 1))
    phi = np.arctan2(g[1], g[0])
    sphere = shape_features(r < 15, (1.0, 1.0, 1.0))
    bumpy = shape_features(r < 15 * (1 + 0.25 * np.sin(4 * theta) * np.cos(5 * phi)), (1, 1, 1))
    assert sphere["shape_sphericity"] == pytest.approx(1.0, abs=0.03)
    assert sphere["shape_solidity"] == pytest.approx(1.0, abs=0.01)
    assert sphere["shape_elongation"] == pytest.approx(1.0, abs=0.01)
    assert sphere["size_volume_ml"] == pytest.approx(4 / 3 * math.pi * 15**3 / 1000, rel=0.02)
    assert bumpy["shape_sphericity"] < 0.85
    assert bumpy["shape_solidity"] < 0.85
    assert bumpy["shape_surface_irregularity"] > 3 * sphere["shape_surface_irregularity"]
    assert bumpy["shape_lobulation"] > 0.1 > sphere["shape_lobulation"]


def test_an_elongated_object_has_elongation_below_one():
    g = np.indices((N, N, N)) - 31.5
    ellipsoid = (g[0] / 25) ** 2 + (g[1] / 10) ** 2 + (g[2] / 10) ** 2 < 1
    f = shape_features(ellipsoid, (1.0, 1.0, 1.0))
    assert f["shape_elongation"] == pytest.approx(0.4, abs=0.03)
    assert f["shape_sphericity"] < 0.9


def test_contrast_is_exact_for_constant_tumor_and_host():
    image, label = liver_with_tumor(lambda r, rng: np.full(r.shape, 70.0), host_noise=0.0)
    v = only_row(image, label).values
    assert v["ctx_tumor_mean_hu"] == pytest.approx(70.0, abs=1e-4)
    assert v["host_mean_hu"] == pytest.approx(100.0, abs=1e-4)
    assert v["rel_contrast_hu"] == pytest.approx(-30.0, abs=1e-4)
    assert v["ctx_edge_step_hu"] == pytest.approx(30.0, abs=0.5)
    assert math.isnan(v["rel_cnr"])  # no host noise: CNR undefined, not infinite


def test_noisier_tumor_has_noise_ratio_above_one_and_smoother_below():
    same = only_row(*liver_with_tumor(lambda r, rng: 70 + rng.normal(0, 10, r.shape))).values
    noisy = only_row(*liver_with_tumor(lambda r, rng: 70 + rng.normal(0, 16, r.shape))).values
    smooth = only_row(
        *liver_with_tumor(
            lambda r, rng: 70 + 3 * ndi.gaussian_filter(rng.normal(0, 10, r.shape), 1)
        )
    ).values
    assert same["rel_noise_ratio"] == pytest.approx(1.0, abs=0.1)
    assert noisy["rel_noise_ratio"] == pytest.approx(1.6, abs=0.15)
    assert smooth["rel_noise_ratio"] < 0.6
    assert noisy["rel_spread_ratio"] > 1.3 > same["rel_spread_ratio"]
    assert same["rel_cnr"] == pytest.approx(3.0, abs=0.3)


def test_edge_width_recovers_the_sigma_of_an_erf_edge():
    def blurred(sigma):
        rng = np.random.default_rng(1)
        r = radius_grid()
        label = np.where(r < 30, 1, 0).astype(np.uint8)
        label[r < 14] = 2
        image = 100 - 30 * 0.5 * (1 - erf((r - 14) / (math.sqrt(2) * sigma)))
        return (image + rng.normal(0, 3, r.shape)).astype(np.float32), label

    widths = {s: only_row(*blurred(s)).values["ctx_edge_width_mm"] for s in (1.0, 2.0, 3.0)}
    assert widths[2.0] == pytest.approx(2.0, rel=0.12)
    assert widths[3.0] == pytest.approx(3.0, rel=0.12)
    assert widths[1.0] < widths[2.0] < widths[3.0]


def test_components_are_sorted_by_volume_and_small_ones_ignored():
    r_big, r_small = radius_grid((20, 20, 20)), radius_grid((46, 46, 46))
    label = np.ones((N, N, N), np.uint8)
    label[r_small < 6] = 2
    label[r_big < 9] = 2
    label[58:61, 2:5, 2:5] = 2  # 27 mm^3 < 30 mm^3
    image = np.where(label == 2, 60.0, 100.0).astype(np.float32)
    rows = case_features(image, label, (1, 1, 1), label_map=LIVER, settings=OWN, case="c1")
    assert [r.tumor for r in rows] == [1, 2]
    assert rows[0].volume_ml == pytest.approx((r_big < 9).sum() / 1000)
    assert rows[1].volume_ml == pytest.approx((r_small < 6).sum() / 1000)
    assert rows[0].bbox == ((12, 29), (12, 29), (12, 29))  # |x - 20| < 9
    assert rows[0].center_vox == pytest.approx((20, 20, 20))
    assert rows[0].group == "c1" and rows[0].source == "real" and rows[0].organ == "liver"
    loose = FeatureSettings(radiomics=False, min_volume_mm3=20)
    assert len(case_features(image, label, (1, 1, 1), label_map=LIVER, settings=loose)) == 3


def test_patch_rows_have_no_size_or_shape_features_and_are_deterministic():
    image, label = liver_with_tumor(lambda r, rng: 70 + rng.normal(0, 10, r.shape))
    settings = FeatureSettings(radiomics=False, patches_per_tumor=3, patch_radius_mm=8, seed=4)
    rows = case_features(image, label, (1, 1, 1), label_map=LIVER, settings=settings, case="a")
    assert [r.patch for r in rows] == [0, 1, 2, 3]
    assert any(k.startswith("shape_") for k in rows[0].values)
    for patch in rows[1:]:
        assert not any(feature_family(k) in ("size", "shape") for k in patch.values)
        assert {"ctx_noise_in_hu", "rel_contrast_hu", "host_mean_hu"} <= set(patch.values)
        assert patch.values["rel_contrast_hu"] == pytest.approx(-30, abs=3)
        # centred at the boundary: the patch holds interior, edge and host
        assert 11 <= np.linalg.norm(np.asarray(patch.center_vox) - 31.5) <= 14
        assert all(b - a <= 17 for a, b in patch.bbox)
    again = case_features(image, label, (1, 1, 1), label_map=LIVER, settings=settings, case="a")
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rows]
    other = case_features(
        image,
        label,
        (1, 1, 1),
        label_map=LIVER,
        settings=FeatureSettings(radiomics=False, patches_per_tumor=3, patch_radius_mm=8, seed=5),
        case="a",
    )
    assert [r.center_vox for r in other[1:]] != [r.center_vox for r in rows[1:]]


def test_rows_round_trip_through_strict_json():
    image, label = liver_with_tumor(lambda r, rng: np.full(r.shape, 70.0), host_noise=0.0)
    row = only_row(image, label)
    text = json.dumps(row.to_dict(), allow_nan=False)  # NaN -> null
    back = TumorFeatures.from_dict(json.loads(text))
    assert back.to_dict() == row.to_dict()
    assert math.isnan(back.values["rel_cnr"])


def test_feature_family_reads_the_prefix():
    assert feature_family("size_rad_MeshVolume") == "size"
    assert feature_family("norm_glcm_Contrast") == "norm"
    with pytest.raises(ValueError):
        feature_family("volume")


def test_bad_input_is_refused():
    image, label = liver_with_tumor(lambda r, rng: np.full(r.shape, 70.0))
    with pytest.raises(InputError, match="same shape"):
        case_features(image, label[:-1], (1, 1, 1), label_map=LIVER)
    with pytest.raises(InputError, match="no tumor ids for organ 'kidney'"):
        case_features(image, label, (1, 1, 1), label_map=LIVER, organs=("kidney",))
    with pytest.raises(InputError, match="shell_mm"):
        FeatureSettings(shell_mm=(5.0, 2.0))
    assert case_features(image, np.minimum(label, 1), (1, 1, 1), label_map=LIVER) == []


def write_case(folder, name, image, label):
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(image.astype(np.int16), affine), folder / f"{name}_ct.nii.gz")
    nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), folder / f"{name}_seg.nii.gz")
    return CaseInput(
        name, folder / f"{name}_ct.nii.gz", folder / f"{name}_seg.nii.gz", LIVER, "real"
    )


def test_cache_hit_returns_identical_rows_and_a_corrupt_cache_is_recomputed(tmp_path, monkeypatch):
    case = write_case(
        tmp_path, "a", *liver_with_tumor(lambda r, rng: 70 + rng.normal(0, 9, r.shape))
    )
    cache = tmp_path / "cache"
    first = extract_features([case], OWN, cache_dir=cache, progress=False)
    files = list(cache.glob("*.json"))
    assert len(files) == 1 and len(first) == 1

    def no_work(*args, **kwargs):
        raise AssertionError("the cache was not used")

    with monkeypatch.context() as m:
        m.setattr(features_module, "case_features", no_work)
        hit = extract_features([case], OWN, cache_dir=cache, progress=False)
    assert [r.to_dict() for r in hit] == [r.to_dict() for r in first]
    files[0].write_text('{"version": 1, "rows": [{"case": ')  # truncated
    again = extract_features([case], OWN, cache_dir=cache, progress=False)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in first]
    assert json.loads(files[0].read_text())["rows"][0]["case"] == "a"
    other = FeatureSettings(radiomics=False, shell_mm=(2.0, 8.0))
    extract_features([case], other, cache_dir=cache, progress=False)
    assert len(list(cache.glob("*.json"))) == 2  # settings are part of the key


def test_extract_warns_on_a_case_without_tumor_and_names_missing_files(tmp_path):
    image, label = liver_with_tumor(lambda r, rng: np.full(r.shape, 70.0))
    empty = write_case(tmp_path, "empty", image, np.minimum(label, 1))
    with pytest.warns(NoTumorWarning, match="empty_seg.nii.gz"):
        assert extract_features([empty], OWN, progress=False) == []
    gone = CaseInput("gone", tmp_path / "gone.nii.gz", empty.label, LIVER, "real")
    with pytest.raises(InputError, match="gone.nii.gz"):
        extract_features([gone], OWN, progress=False)


def test_parallel_extraction_matches_serial(tmp_path):
    cases = [
        write_case(
            tmp_path,
            f"c{i}",
            *liver_with_tumor(lambda r, rng: 70 + rng.normal(0, 9, r.shape), seed=i),
        )
        for i in range(2)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        serial = extract_features(cases, OWN, progress=False)
        parallel = extract_features(cases, OWN, workers=2, progress=False)
    assert [r.to_dict() for r in parallel] == [r.to_dict() for r in serial]
    assert [r.case for r in serial] == ["c0", "c1"]


@pytest.mark.realdata
def test_ircad_117_two_real_tumors():
    folder = require_data("ircadb01_p17")
    ct = load_image(folder / "ircadb01_p17_ct.nii.gz")
    seg = load_label(folder / "ircadb01_p17_label.nii.gz")
    rows = case_features(
        ct.array, seg.array, ct.spacing_mm, label_map=resolve_label_map("lits"), settings=OWN
    )
    assert [r.tumor for r in rows] == [1, 2]
    assert rows[0].volume_ml == pytest.approx(85.6, rel=0.01)
    assert rows[1].volume_ml == pytest.approx(78.6, rel=0.01)
    assert rows[0].values["rel_contrast_hu"] == pytest.approx(-16, abs=4)
    assert rows[1].values["rel_contrast_hu"] == pytest.approx(-38, abs=4)
    # The larger tumor's interior is noisier than its liver shell; the other's fine-scale
    # noise is a little below its shell's (0.90: its shell holds enhancing vessels), but both
    # are more heterogeneous than their host at the 4 mm scale.
    assert rows[0].values["rel_noise_ratio"] > 1.1
    assert 0.8 < rows[1].values["rel_noise_ratio"] < 1.0
    assert all(r.values["rel_heterogeneity_ratio"] > 1.05 for r in rows)
    assert all(r.values["rel_rim_core_drop"] > 0.5 for r in rows)  # darker centres
    assert all(0.8 < r.values["shape_sphericity"] < 0.95 for r in rows)
