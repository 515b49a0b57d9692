"""Evaluation of the six-organ output convention (colon 7/8, esophagus 9/10, uterus 11/12): per
organ tables, lesion sensitivity, early-stage lesions and the FROC per organ, on a hand-made
prediction / ground-truth pair with a colon and a uterus tumor."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tumorsynth.evaluation.folders import evaluate_folders, organ_tumor_ids
from tumorsynth.evaluation.report import render_markdown, write_report
from tumorsynth.io.label_maps import OUTPUT_LABELS

SPACING = (1.0, 1.0, 2.0)
SHAPE = (60, 50, 20)
COLON, COLON_TUMOR, UTERUS, UTERUS_TUMOR, LIVER = 7, 8, 11, 12, 1


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array.astype(np.uint8), np.diag([*SPACING, 1.0])), str(path))
    return path


def block(array: np.ndarray, lo, hi, value: int) -> None:
    array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Case ``a``: a colon tumor (8 x 10 x 5 voxels = 800 mm^3) predicted shifted by 2 voxels,
    a uterus tumor (4 x 4 x 2 = 64 mm^3, early stage) missed, a false-positive uterus component;
    case ``b``: organs only, a colon false positive. Tumor probability maps per organ."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    base = np.zeros(SHAPE, np.uint8)
    block(base, (2, 2, 1), (30, 48, 19), COLON)
    block(base, (32, 2, 1), (58, 20, 19), UTERUS)
    block(base, (32, 25, 1), (58, 48, 19), LIVER)
    gt_a, pred_a = base.copy(), base.copy()
    block(gt_a, (10, 10, 5), (18, 20, 10), COLON_TUMOR)
    block(pred_a, (12, 10, 5), (20, 20, 10), COLON_TUMOR)
    block(gt_a, (40, 8, 8), (44, 12, 10), UTERUS_TUMOR)
    block(pred_a, (50, 14, 12), (53, 17, 14), UTERUS_TUMOR)  # a false positive
    pred_b = base.copy()
    block(pred_b, (4, 30, 3), (7, 33, 5), COLON_TUMOR)
    save(gt / "a.nii.gz", gt_a)
    save(pred / "a.nii.gz", pred_a)
    save(gt / "b.nii.gz", base)
    save(pred / "b.nii.gz", pred_b)
    for case, label in (("a", pred_a), ("b", pred_b)):
        for organ, tumor in (("colon", COLON_TUMOR), ("uterus", UTERUS_TUMOR)):
            probability = np.where(label == tumor, 230, 0).astype(np.uint8)
            save(pred / "probabilities" / f"{case}_{organ}_tumor.nii.gz", probability)
    return pred, gt


def test_every_organ_of_the_output_convention_has_its_tumor_ids():
    ids = organ_tumor_ids(OUTPUT_LABELS, OUTPUT_LABELS)
    assert {k: v[1] for k, v in ids.items()} == {
        "liver": (2,),
        "pancreas": (4,),
        "kidney": (6,),
        "colon": (8,),
        "esophagus": (10,),
        "uterus": (12,),
    }


def test_each_organ_is_evaluated_on_its_own_tumors(folders, tmp_path):
    pred, gt = folders
    report = evaluate_folders(pred, gt, label_map_gt="tumorsynth", n_bootstrap=50)
    assert list(report.organs) == ["colon", "uterus"]  # organs with a tumor somewhere
    colon, uterus = report.organs["colon"].summary, report.organs["uterus"].summary
    # colon: 8 x 10 x 5 box against the same box 2 voxels over: overlap 6/8
    assert colon.dsc_mean.value == pytest.approx(0.75)
    assert colon.lesion_sensitivity.value == 1.0 and colon.n_lesions == 1
    assert colon.n_lesions_by_stratum["[5,10)"] == 1  # radius of 800 mm^3: 5.76 mm
    assert colon.fp_per_case.value == pytest.approx(0.5)  # case b's colon false positive
    assert colon.n_controls == 1 and colon.n_false_positive_cases == 1
    assert colon.patient_specificity.value == 1.0  # 18 mm^3: under the patient threshold
    # uterus: missed (early stage: 64 mm^3 is 5 mm across), one false positive in case a
    assert uterus.lesion_sensitivity.value == 0.0 and uterus.n_lesions == 1
    assert uterus.n_early_stage_lesions == 1 and uterus.early_stage_sensitivity.value == 0.0
    assert uterus.dsc_mean.value == 0.0
    assert uterus.fp_per_case.value == pytest.approx(0.5)
    assert uterus.patient_specificity.value == 1.0  # case b has no uterus prediction
    assert report.organs["uterus"].tumor_ids_gt == (12,)
    # overall: both organs' tumors as one class
    assert report.summary.n_lesions == 2 and report.summary.lesion_sensitivity.value == 0.5
    # FROC per organ, from the probability maps
    assert report.froc is not None and set(report.froc.curves) == {"colon", "uterus"}
    assert report.froc.curves["colon"].n_lesions == 1
    assert report.froc.curves["uterus"].n_lesions == 1
    written = write_report(report, tmp_path / "out", plots=False)
    data = json.loads(written["json"].read_text())
    assert set(data["organs"]) == {"colon", "uterus"}
    assert data["organs"]["colon"]["summary"]["dsc_mean"] == pytest.approx(0.75)
    assert len(data["organs"]["uterus"]["cases"]) == 2
    markdown = render_markdown(report)
    assert "## Per organ" in markdown
    colon_row = next(line for line in markdown.splitlines() if line.startswith("| colon | [8]"))
    assert "| 0.750 (" in colon_row and "| 1 | 1 |" in colon_row


def test_one_organ_asked_gives_no_per_organ_tables(folders):
    pred, gt = folders
    report = evaluate_folders(pred, gt, label_map_gt="tumorsynth", organ="uterus", n_bootstrap=0)
    assert report.organs == {}
    assert report.settings["tumor_ids_gt"] == [12]
    assert report.summary.n_lesions == 1 and report.summary.lesion_sensitivity.value == 0.0
    assert report.froc is not None and set(report.froc.curves) == {"uterus"}
    assert "## Per organ" not in render_markdown(report)


def test_per_organ_results_are_the_same_in_worker_processes(folders):
    pred, gt = folders
    one = evaluate_folders(pred, gt, label_map_gt="tumorsynth", n_bootstrap=0)
    two = evaluate_folders(pred, gt, label_map_gt="tumorsynth", n_bootstrap=0, workers=2)
    assert json.dumps(one.to_json(), default=str) == json.dumps(two.to_json(), default=str)


# -- the reader study's size classes of wall tumors ----------------------------------------------
@pytest.fixture(scope="module")
def phantom_colon_tumors(tmp_path_factory):
    """Colon tumors drawn tiny and large in the phantom (default field of view), each case
    written as a label file in the output convention: (size asked, drawn length, label path)."""
    from tiny import synthesize_phantom

    from tumorsynth.io.nifti import Volume, save_volume
    from tumorsynth.phantom import make_phantom

    phantom = make_phantom(0)
    folder = tmp_path_factory.mktemp("colon_tumors")
    cases = []
    for size in ("tiny", "large"):
        for rng in (0, 1):
            out = synthesize_phantom(phantom, organ="colon", count=1, size=size, rng=rng)
            path = save_volume(Volume(out.label, phantom[0].affine), folder / f"{size}{rng}.nii.gz")
            cases.append((size, out.records[0].shape["wall"]["length_mm"], path))
    return cases


def test_wall_tumors_are_classed_by_their_length_along_the_organ(phantom_colon_tumors):
    """The profile's nominal base radii (half a wall thickness) would class every colon tumor
    large by its equivalent diameter; by its length along the colon each is in the class it was
    drawn in, and the length measured is the drawn one within a few mm."""
    from tumorsynth.io.label_maps import resolve_label_map
    from tumorsynth.organs import get_profile
    from tumorsynth.realism.feature_rows import CaseInput
    from tumorsynth.turing.study_items import case_tumors, length_along_organ_mm

    colon = get_profile("colon")
    diameters = sorted(2 * rule.base_radius_mm for rule in colon.size_classes.values())
    diameter_bound = np.sqrt(diameters[-2] * diameters[-1])  # the old rule's medium/large bound
    for size, drawn_mm, path in phantom_colon_tumors:
        case = CaseInput(
            path.stem, path, path, resolve_label_map("tumorsynth"), "synthetic", organs=("colon",)
        )
        (tumor,) = case_tumors(case, "synthetic", min_volume_mm3=10.0, generators={})
        assert tumor.size_class == size, (size, drawn_mm)
        assert tumor.diameter_mm > diameter_bound  # what the old rule classed as large
        label = np.asanyarray(nib.load(str(path)).dataobj)
        measured = length_along_organ_mm(
            label == COLON_TUMOR, np.isin(label, (COLON, COLON_TUMOR)), (2.0, 2.0, 2.5)
        )
        assert abs(measured - drawn_mm) < 7.0, (measured, drawn_mm)


def test_wall_organ_size_bounds_follow_the_profile_s_lengths():
    from tumorsynth.turing.study_items import size_class_bounds, size_class_of

    assert [round(b, 1) for _, b in size_class_bounds("esophagus")] == [18.7, 33.5, 58.1, np.inf]
    assert [size_class_of(v, "colon") for v in (10, 20, 40, 70)] == [
        "tiny",
        "small",
        "medium",
        "large",
    ]
    assert size_class_bounds("uterus")[0] == ("tiny", pytest.approx(np.sqrt(8 * 16)))
