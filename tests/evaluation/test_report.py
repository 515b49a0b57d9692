"""Folder evaluation, report files, and the real IRCAD 1.17 tumors evaluated against themselves."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from tumorsynth.errors import InputError
from tumorsynth.evaluation.folders import EvaluationSettings, evaluate_folders
from tumorsynth.evaluation.metrics import evaluate_case, surface_voxels
from tumorsynth.evaluation.pairing import check_label_maps, pair_cases, tumor_ids_for
from tumorsynth.evaluation.report import write_report
from tumorsynth.io.label_maps import OUTPUT_LABELS, resolve_label_map
from tumorsynth.io.nifti import Volume

SPACING = (0.8, 0.8, 2.0)
SHAPE = (48, 40, 16)
SUMMARY_KEYS = {
    "dsc_mean", "nsd_mean", "lesion_sensitivity", "lesion_sensitivity_by_stratum",
    "early_stage_sensitivity", "fp_per_case", "patient_sensitivity", "patient_specificity",
    "ci95", "n_cases", "n_tumor_cases", "n_controls", "n_lesions_by_stratum",
}  # fmt: skip


def save(path: Path, array: np.ndarray, spacing: tuple[float, float, float] = SPACING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), np.diag([*spacing, 1.0])), str(path))
    return path


def box(lo: tuple[int, int, int], hi: tuple[int, int, int], value: int = 2) -> np.ndarray:
    array = np.zeros(SHAPE, np.uint8)
    array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value
    return array


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three cases in LiTS labels: a shifted tumor, a control, a case with a missed lesion."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    liver = box((2, 2, 1), (46, 38, 15), value=1)
    save(gt / "a.nii.gz", np.maximum(liver, box((10, 10, 4), (20, 20, 10))))
    save(pred / "a.nii.gz", np.maximum(liver, box((12, 10, 4), (22, 20, 10))))
    save(gt / "b.nii.gz", liver)
    save(pred / "b.nii.gz", liver)
    save(gt / "c.nii.gz", np.maximum(box((5, 5, 5), (15, 15, 9)), box((30, 30, 8), (32, 32, 9))))
    save(pred / "c.nii.gz", box((5, 5, 5), (15, 15, 9)))
    (pred / "plans.json").write_text("{}")  # nnU-Net leaves these beside its predictions
    (pred / ".a.part.nii.gz").write_bytes(b"")
    return pred, gt


# --- pairing and settings ----------------------------------------------------------------------


def test_pairing_by_case_id_and_nnunet_subfolders(
    tmp_path: Path, folders: tuple[Path, Path]
) -> None:
    pred, gt = folders
    assert [case for case, _, _ in pair_cases(pred, gt)] == ["a", "b", "c"]
    dataset = tmp_path / "Dataset001_Liver"
    (dataset / "labelsTr").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (dataset / "labelsTr" / f"{name}.nii.gz").symlink_to(gt / f"{name}.nii.gz")
    assert pair_cases(pred, dataset)[0][2] == dataset / "labelsTr" / "a.nii.gz"


def test_pairing_names_missing_and_extra_files(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    save(pred / "zz_extra.nii.gz", np.zeros(SHAPE))
    with pytest.raises(InputError, match=r"have no ground truth .*zz_extra\.nii\.gz"):
        pair_cases(pred, gt)
    (pred / "zz_extra.nii.gz").unlink()
    (pred / "b.nii.gz").unlink()
    with pytest.raises(InputError, match=r"1 of 3 ground-truth cases .* no prediction: b\.nii\.gz"):
        pair_cases(pred, gt)
    with pytest.raises(InputError, match="--gt folder does not exist"):
        pair_cases(pred, tmp_path / "nowhere")
    with pytest.raises(InputError, match="found none"):
        pair_cases(pred, tmp_path)  # holds only folders


def test_label_maps_are_checked_against_the_files(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_label_maps(pred, gt, label_map_gt="lits", organ="liver")  # LiTS files: they fit
    with pytest.raises(InputError, match=r"label map 'tumorsynth' scores ids \[6\] as tumor"):
        check_label_maps(pred, gt, label_map_gt="tumorsynth", organ="kidney")


def test_tumor_ids_from_label_maps() -> None:
    assert tumor_ids_for(resolve_label_map("lits"), "liver") == (2,)
    assert tumor_ids_for(OUTPUT_LABELS, "kidney") == (6,)
    assert tumor_ids_for(resolve_label_map("kits"), "all") == (2, 3)
    assert tumor_ids_for(resolve_label_map("msd"), "pancreas") == (2,)
    with pytest.raises(InputError, match="no tumor id for this organ"):
        tumor_ids_for(resolve_label_map("lits"), "kidney")
    with pytest.raises(InputError, match="no tumor id"):
        tumor_ids_for(resolve_label_map("totalsegmentator"), "all")
    with pytest.raises(InputError, match="nsd_tolerance_mm"):
        EvaluationSettings(nsd_tolerance_mm=-1.0)


# --- folder evaluation and report files --------------------------------------------------------


def test_evaluate_folders_by_hand(folders: tuple[Path, Path]) -> None:
    report = evaluate_folders(*folders, label_map_gt="lits", organ="liver", n_bootstrap=200)
    a, b, c = report.cases
    assert a.dsc == pytest.approx(2 * 8 * 10 * 6 / (2 * 600))  # shifted 2 of 10 voxels
    assert (b.dsc, b.nsd, b.has_tumor) == (1.0, 1.0, False)
    assert c.detected == 1 and c.n_lesions == 2 and c.dsc == pytest.approx(2 * 400 / 804)
    s = report.summary
    assert s.dsc_mean.value == pytest.approx((a.dsc + c.dsc) / 2)  # the control is left out
    assert s.lesion_sensitivity.value == pytest.approx(2 / 3)
    assert (s.patient_sensitivity.value, s.patient_specificity.value) == (1.0, 1.0)
    assert report.settings["tumor_ids_gt"] == [2] and report.settings["organ"] == "liver"
    parallel = evaluate_folders(*folders, label_map_gt="lits", n_bootstrap=200, workers=2)
    assert json.dumps(parallel.summary.to_dict()) == json.dumps(report.summary.to_dict())


def test_grid_mismatch_names_the_file(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    save(pred / "b.nii.gz", np.zeros(SHAPE), spacing=(0.8, 0.8, 2.5))
    with pytest.raises(InputError, match=r"pred/b\.nii\.gz: affine differs"):
        evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0)


def test_unknown_label_ids_warn(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    save(pred / "a.nii.gz", box((10, 10, 4), (20, 20, 10), value=6))
    with pytest.warns(UserWarning, match=r"label ids \[6\] are not in label map 'lits'"):
        evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0)


def test_write_report_files_and_schema(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    report = evaluate_folders(*folders, label_map_gt="lits", n_bootstrap=100, seed=1)
    written = write_report(report, tmp_path / "out" / "eval")
    assert {p.name for p in (tmp_path / "out" / "eval").iterdir()} == {
        "report.json", "report.md", "sensitivity_by_size.png", "dsc_distribution.png",
    }  # fmt: skip
    data = json.loads(written["json"].read_text())
    assert SUMMARY_KEYS <= set(data["summary"])
    for case in data["cases"]:
        assert {"case_id", "dsc", "nsd", "lesions", "detected"} <= set(case)
    lesion = data["cases"][0]["lesions"][0]
    assert set(lesion) == {
        "index", "volume_ml", "radius_mm", "diameter_mm", "stratum", "early_stage", "detected",
        "center_vox",
    }  # fmt: skip
    summary = data["summary"]
    assert summary["lesion_sensitivity_by_stratum"][">=20"] is None  # NaN -> null
    assert summary["ci95"]["lesion_sensitivity_by_stratum"][">=20"] == [None, None]
    low, high = summary["ci95"]["dsc_mean"]
    assert low <= summary["dsc_mean"] <= high
    settings = data["settings"]
    assert settings["nsd_tolerance_mm"] == 2.0 and settings["label_map_gt"] == {"preset": "lits"}
    assert "left out of dsc_mean" in settings["empty_cases"]
    markdown = written["markdown"].read_text()
    assert "| DSC mean |" in markdown and "| c | yes |" in markdown
    for key in ("sensitivity_plot", "dsc_plot"):
        with Image.open(written[key]) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 300
    assert not [p for p in (tmp_path / "out" / "eval").iterdir() if p.name.startswith(".")]


# --- real data: IRCAD 1.17 -----------------------------------------------------------------------


@pytest.mark.realdata
def test_ircad_p17_against_itself(p17: tuple[Volume, Volume]) -> None:
    _, seg = p17
    ids = {"tumor_ids_pred": (2,), "tumor_ids_gt": (2,)}
    case = evaluate_case(seg.array, seg.array, seg.spacing_mm, **ids)
    assert (case.dsc, case.nsd, case.detected, case.fp_components) == (1.0, 1.0, 2, 0)
    volumes = sorted(lesion["volume_ml"] for lesion in case.lesions)
    # 78.6 and 85.6 mL (the data README), counted here from the voxels: scipy's 26-connected
    # components times the voxel volume of the affine.
    components, n = ndi.label(seg.array == 2, structure=np.ones((3, 3, 3), bool))
    voxel_ml = abs(np.linalg.det(seg.affine[:3, :3])) / 1000.0
    counted = sorted(float(np.count_nonzero(components == i)) * voxel_ml for i in range(1, n + 1))
    assert volumes == pytest.approx(counted, rel=1e-9)
    assert {lesion["stratum"] for lesion in case.lesions} == {">=20"}
    assert case.predicted_positive

    tumor = seg.array == 2
    eroded = tumor & ~surface_voxels(tumor)  # one voxel peeled off
    shrunk = evaluate_case(eroded, seg.array, seg.spacing_mm, **ids)
    assert 0.8 < shrunk.dsc < 1.0 and shrunk.detected == 2
    # the peel (0.74 mm in-plane, 1.6 mm in z) is within 2 mm, except where thin parts vanish
    assert shrunk.dsc < shrunk.nsd < 1.0 and shrunk.nsd > 0.98


@pytest.mark.realdata
def test_ircad_p17_folder_evaluation(tmp_path: Path, p17: tuple[Volume, Volume]) -> None:
    _, seg = p17
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "ircadb01_p17.nii.gz").symlink_to(seg.path)
    report = evaluate_folders(tmp_path / "pred", tmp_path / "gt", label_map_gt="lits")
    s = report.summary
    assert (s.dsc_mean.value, s.nsd_mean.value, s.lesion_sensitivity.value) == (1.0, 1.0, 1.0)
    assert s.n_lesions_by_stratum[">=20"] == 2 and math.isnan(s.patient_specificity.value)
