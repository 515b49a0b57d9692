"""pyradiomics features of a tumor, its host shell and the host-normalized tumor."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from shared_data import require_module

from tumorsynth.errors import InputError
from tumorsynth.io import resolve_label_map
from tumorsynth.realism import FeatureSettings, case_features, feature_family
from tumorsynth.realism.radiomics import load_radiomics, resample

LIVER = resolve_label_map({"liver": 1, "liver_tumor": 2})


def small_case(spacing=(1.0, 1.0, 1.0)):
    rng = np.random.default_rng(0)
    n = 40
    g = np.indices((n, n, n)) - (n - 1) / 2
    r = np.sqrt(((g * np.asarray(spacing)[:, None, None, None]) ** 2).sum(axis=0))
    label = np.where(r < 18, 1, 0).astype(np.uint8)
    label[r < 7] = 2
    image = np.where(r < 7, 70.0, 100.0) + rng.normal(0, 12, r.shape)
    return image.astype(np.float32), label


def test_radiomics_names_have_the_family_prefixes_and_are_finite():
    require_module("radiomics")
    image, label = small_case()
    (row,) = case_features(image, label, (1, 1, 1), label_map=LIVER)
    families = {feature_family(k) for k in row.values}
    assert families == {"size", "shape", "ctx", "rel", "host", "tumor", "norm"}
    for prefix in ("tumor_glcm_", "host_glszm_", "norm_gldm_", "tumor_ngtdm_", "tumor_glrlm_"):
        assert any(k.startswith(prefix) for k in row.values), prefix
    assert "shape_rad_Sphericity" in row.values and "size_rad_MeshVolume" in row.values
    assert "size_tumor_firstorder_Energy" in row.values  # grows with volume: a size feature
    assert "tumor_firstorder_Energy" not in row.values
    radiomic = {
        k: v for k, v in row.values.items() if feature_family(k) in ("tumor", "host", "norm")
    }
    assert len(radiomic) > 200
    assert all(math.isfinite(v) for v in radiomic.values())
    assert row.values["tumor_firstorder_Mean"] == pytest.approx(70, abs=3)
    assert row.values["host_firstorder_Mean"] == pytest.approx(100, abs=3)
    # normalized by the shell: (70 - 100) / 12 HU of noise
    assert row.values["norm_firstorder_Mean"] == pytest.approx(-30 / 12, abs=0.4)
    assert row.values["size_rad_MeshVolume"] == pytest.approx(4 / 3 * math.pi * 7**3, rel=0.1)


def test_patch_radiomics_leave_out_size_and_shape():
    require_module("radiomics")
    image, label = small_case()
    settings = FeatureSettings(patches_per_tumor=1, patch_radius_mm=8)
    rows = case_features(image, label, (1, 1, 1), label_map=LIVER, settings=settings)
    patch = rows[1]
    assert patch.patch == 1
    assert any(k.startswith("tumor_glcm_") for k in patch.values)
    assert not any(feature_family(k) in ("size", "shape") for k in patch.values)
    assert set(rows[0].values) - set(patch.values) == {
        k for k in rows[0].values if feature_family(k) in ("size", "shape")
    }


def test_resampling_keeps_the_physical_box_and_volume():
    require_module("SimpleITK")
    import SimpleITK as sitk

    spacing = np.array([0.5, 0.5, 2.0])
    g = (np.indices((40, 40, 10)) - np.array([19.5, 19.5, 4.5])[:, None, None, None]) * spacing[
        :, None, None, None
    ]
    ball = (g**2).sum(axis=0) < 6.5**2
    out = resample(ball, spacing, (1.0, 1.0, 1.0), mask=True)
    assert out.GetSize() == (20, 20, 20)  # the same 20 x 20 x 20 mm box
    volume = float(sitk.GetArrayFromImage(out).sum())
    assert volume == pytest.approx(ball.sum() * 0.5 * 0.5 * 2.0, rel=0.05)


def test_missing_pyradiomics_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "radiomics", None)
    with pytest.raises(InputError, match=r'pip install "tumorsynth\[realism\]"'):
        load_radiomics()
