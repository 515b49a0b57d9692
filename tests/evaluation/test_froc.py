"""FROC from tumor probability maps: hand-counted curves, the lesion definitions at every level,
finding and checking the maps, the report, and IRCAD 1.17 with a perturbed probability map."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from tumorsynth.errors import InputError
from tumorsynth.evaluation.folders import evaluate_folders
from tumorsynth.evaluation.froc import case_froc, fp_components_by_level, summarize_froc
from tumorsynth.evaluation.lesions import match_lesions
from tumorsynth.evaluation.pairing import find_probability_maps
from tumorsynth.evaluation.report import froc_line, write_report
from tumorsynth.io.nifti import Volume

SPACING = (1.0, 1.0, 2.0)
SHAPE = (24, 24, 8)
LESIONS = {  # where each lesion is, and its peak probability (the rest of it is lower)
    "a": [((2, 2, 2), 1.0), ((8, 2, 2), 0.8)],
    "b": [((2, 2, 2), 0.6), ((8, 2, 2), 0.4)],
    "c": [],
}
# False-positive blobs (single voxels, 2 apart): probability -> count per case. Each group sits
# between two lesion peaks, so every FP budget buys one more lesion:
#   0.84 (stored 214): 3 in all, 0.64 (163): 3, 0.44 (112): 6, 0.24 (61): 12, 0.04 (10): 3.
BLOBS = {
    "a": {0.84: 2, 0.44: 3},
    "b": {0.64: 3, 0.24: 6},
    "c": {0.84: 1, 0.44: 3, 0.24: 6, 0.04: 3},
}


def stored(p: np.ndarray) -> np.ndarray:
    """The file contract of ``predict --save-probabilities``: round(255 p) as uint8."""
    return np.rint(255.0 * p).astype(np.uint8)


def case_arrays(case: str) -> tuple[np.ndarray, np.ndarray]:
    """(probability, ground-truth label in LiTS ids: 1 liver, 2 tumor) of one constructed case."""
    p = np.zeros(SHAPE)
    gt = np.zeros(SHAPE, np.uint8)
    gt[1:23, 1:23, 1:7] = 1
    for (x, y, z), peak in LESIONS[case]:
        gt[x : x + 3, y : y + 3, z : z + 3] = 2
        p[x : x + 3, y : y + 3, z : z + 3] = 0.1  # found only at thresholds <= its peak
        p[x + 1, y + 1, z + 1] = peak
    spots = [(x, y, z) for x in range(2, 22, 2) for y in range(10, 22, 2) for z in (1, 4)]
    for probability, count in BLOBS[case].items():
        for _ in range(count):
            p[spots.pop()] = probability
    return p, gt


def write(path: Path, array: np.ndarray, spacing: tuple[float, ...] = SPACING) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))
    return path


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Three cases (two with two lesions each, a control): labels = probability >= 0.5."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for case in LESIONS:
        p, label = case_arrays(case)
        write(gt / f"{case}.nii.gz", label)
        write(pred / f"{case}.nii.gz", np.where(p >= 0.5, 2, label.clip(0, 1)).astype(np.uint8))
        write(pred / "probabilities" / f"{case}_liver_tumor.nii.gz", stored(p))
    return pred, gt


# --- the curve, counted by hand ------------------------------------------------------------------


def test_case_peaks_and_false_positives_by_hand() -> None:
    p, label = case_arrays("a")
    case = case_froc(stored(p), label == 2, case_id="a", organ="liver")
    assert case.lesion_peaks == (255, 204)
    fp = case.fp_by_level
    assert (fp[214], fp[215], fp[112], fp[113], fp[1], fp[256]) == (2, 0, 5, 2, 5, 0)
    detected = case.detected_by_level()
    assert (detected[255], detected[204], detected[205], detected[256]) == (1, 2, 1, 0)


def test_operating_points_by_hand() -> None:
    cases = []
    for name in LESIONS:
        p, label = case_arrays(name)
        cases.append(case_froc(stored(p), label == 2, case_id=name, organ="liver"))
    curve = summarize_froc(cases, organ="liver", n_bootstrap=300, seed=2)
    assert (curve.n_cases, curve.n_lesions) == (3, 4)
    points = {p.fp_rate: p for p in curve.operating_points}
    # 1 FP per case = 3 FP in all: the 0.84 blobs; lesions 1.0 and 0.8 found, at threshold 0.8
    assert (points[1.0].sensitivity.value, points[1.0].threshold) == (0.5, 0.8)
    assert points[1.0].fp_per_case == 1.0
    # 6 FP: + the 0.64 blobs -> lesion 0.6; 12 FP: + the 0.44 blobs -> lesion 0.4
    assert (points[2.0].sensitivity.value, points[2.0].threshold) == (0.75, 0.6)
    assert (points[4.0].sensitivity.value, points[4.0].threshold) == (1.0, 0.4)
    assert (points[8.0].sensitivity.value, points[8.0].fp_per_case) == (1.0, 4.0)
    assert curve.at_threshold(0.5) == (0.75, 2.0)
    assert curve.at_threshold(0.05) == (1.0, 8.0)  # 24 FP: the 0.04 blobs are not in yet
    assert curve.at_threshold(0.01) == (1.0, 9.0)
    for point in curve.operating_points:
        low, high = point.sensitivity.ci95
        assert 0.0 <= low <= point.sensitivity.value <= high <= 1.0
    again = summarize_froc(cases, organ="liver", n_bootstrap=300, seed=2)
    assert again.to_dict() == curve.to_dict()
    no_intervals = summarize_froc(cases, organ="liver", n_bootstrap=0)
    assert all(math.isnan(v) for p in no_intervals.operating_points for v in p.sensitivity.ci95)


def test_no_lesions_gives_nan_sensitivity_and_fp_still_counts() -> None:
    p, label = case_arrays("c")
    curve = summarize_froc(
        [case_froc(stored(p), label == 2, case_id="c", organ="liver")], organ="liver"
    )
    assert curve.n_lesions == 0
    assert all(math.isnan(point.sensitivity.value) for point in curve.operating_points)
    assert curve.at_threshold(0.3)[1] == 4.0  # 1 + 3 blobs above 0.3


def test_every_level_counts_as_match_lesions_does() -> None:
    """The component tree gives match_lesions' detections and false positives at every level,
    on random smooth maps whose components split and merge as the threshold moves."""
    rng = np.random.default_rng(7)
    for _ in range(6):
        smooth = ndi.gaussian_filter(rng.random((18, 16, 10)), 1.2)
        smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
        values = stored(smooth**3)
        gt = ndi.gaussian_filter(rng.random(values.shape), 1.5) > 0.53
        case = case_froc(values, gt, case_id="x", organ="liver")
        detected = case.detected_by_level()
        for level in range(1, 257):
            match = match_lesions(values >= level, gt, (1.0, 1.0, 1.0))
            assert (case.fp_by_level[level], detected[level]) == (
                match.fp_components,
                match.detected,
            )


def test_a_blob_that_splits_counts_twice() -> None:
    values = np.zeros((9, 3, 3), np.uint8)
    values[1:8, 1, 1] = [50, 90, 50, 20, 50, 90, 50]
    fp = fp_components_by_level(values, np.zeros(values.shape, bool))
    assert [int(fp[k]) for k in (1, 20, 21, 50, 51, 90, 91)] == [1, 1, 2, 2, 2, 2, 0]


# --- folders, report ------------------------------------------------------------------------------


def test_folder_evaluation_writes_the_froc(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    report = evaluate_folders(*folders, label_map_gt="lits", n_bootstrap=200, seed=3)
    assert report.froc is not None and list(report.froc.curves) == ["liver"]
    points = report.froc.curves["liver"].operating_points
    assert [p.sensitivity.value for p in points] == [0.5, 0.75, 1.0, 1.0]
    assert report.summary.lesion_sensitivity.value == 0.75  # labels = probability >= 0.5
    parallel = evaluate_folders(*folders, label_map_gt="lits", n_bootstrap=200, seed=3, workers=2)
    assert parallel.froc is not None
    assert parallel.froc.to_dict() == report.froc.to_dict()

    written = write_report(report, tmp_path / "out")
    data = json.loads(written["json"].read_text())
    froc = data["froc"]
    assert froc["computed"] and froc["fp_rates"] == [1.0, 2.0, 4.0, 8.0]
    liver = froc["organs"]["liver"]
    assert [p["sensitivity"] for p in liver["operating_points"]] == [0.5, 0.75, 1.0, 1.0]
    assert liver["operating_points"][0]["threshold"] == 0.8
    assert liver["curve"]["threshold"][0] is None  # nothing predicted: (0 FP, sensitivity 0)
    assert liver["curve"]["fp_per_case"][:2] == [0.0, 0.0]
    assert liver["cases"][0]["lesion_peak_probability"] == [1.0, 0.8]
    at = {row["threshold"]: row for row in liver["at_thresholds"]}
    assert (at[0.5]["sensitivity"], at[0.5]["fp_per_case"]) == (0.75, 2.0)
    markdown = written["markdown"].read_text()
    assert "## FROC" in markdown and "### liver tumors: 4 lesions in 3 cases" in markdown
    assert "| 1 | 0.500 |" in markdown and "| 0.50 | 0.750 | 2.00 |" in markdown
    with Image.open(written["froc_plot"]) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 500
    with Image.open(written["froc_plot"]) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    assert (np.abs(pixels - [76, 114, 176]).sum(axis=2) < 30).sum() > 200  # the curve is drawn
    assert froc_line(report) == "FROC sensitivity@FP per case: liver (4 lesions) " + (
        "0.500@1, 0.750@2, 1.000@4, 1.000@8"
    )


def test_without_probability_maps_the_report_says_why(
    tmp_path: Path, folders: tuple[Path, Path]
) -> None:
    pred, gt = folders
    for path in (pred / "probabilities").iterdir():
        path.unlink()
    report = evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0)
    assert report.froc is not None and not report.froc.computed
    assert "no tumor probability maps" in report.froc.reason
    (pred / "probabilities").rmdir()
    report = evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0)
    assert report.froc is not None and "does not exist" in report.froc.reason
    written = write_report(report, tmp_path / "out")
    assert "Not computed: no probability maps" in written["markdown"].read_text()
    assert "froc_plot" not in written
    data = json.loads(written["json"].read_text())["froc"]
    assert data["computed"] is False and "--save-probabilities" in data["reason"]


def test_maps_of_an_organ_the_labels_lack_are_noted(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    for path in (pred / "probabilities").iterdir():
        path.rename(path.with_name(path.name.replace("_liver_", "_kidney_")))
    report = evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0)
    assert report.froc is not None and not report.froc.computed
    assert "kidney tumor probability maps not scored" in report.froc.reason
    found = find_probability_maps(pred, ["a", "b", "c"], organ="liver")
    assert not found.files and "found maps of ['kidney']" in found.reason


def test_case_ids_with_underscores_and_explicit_folder(tmp_path: Path) -> None:
    folder = tmp_path / "maps"
    folder.mkdir()
    for name in ("p_1_liver_tumor.nii.gz", "p_1_2_liver_tumor.nii.gz", "p_1_2_kidney_tumor.nii"):
        (folder / name).write_bytes(b"")
    (folder / "notes.txt").write_text("ignored")
    (folder / ".p_1_liver_tumor.nii.gz.part").write_bytes(b"")
    found = find_probability_maps(tmp_path, ["p_1", "p_1_2"], folder=folder, organ="liver")
    assert found.files == {
        "liver": {
            "p_1": folder / "p_1_liver_tumor.nii.gz",
            "p_1_2": folder / "p_1_2_liver_tumor.nii.gz",
        }
    }
    with pytest.raises(InputError, match=r"p_1_kidney_tumor\.nii\.gz: missing: 1 of 2 cases"):
        find_probability_maps(tmp_path, ["p_1", "p_1_2"], folder=folder)  # all: kidney lacks p_1


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing", r"probabilities/b_liver_tumor\.nii\.gz: missing: 1 of 3 cases .*while 2"),
        ("shape", r"a_liver_tumor\.nii\.gz: shape \(24, 24, 7\) does not match .*pred/a\.nii\.gz"),
        ("affine", r"a_liver_tumor\.nii\.gz: affine differs by up to 0\.5 mm from the grid"),
        ("fraction", r"a_liver_tumor\.nii\.gz: expected stored values round\(255 p\) in 0\.\.255"),
        ("stranger", r"zz_liver_tumor\.nii\.gz: expected <case_id>_<organ>_tumor"),
        ("explicit", r"--probabilities .*nowhere: folder does not exist"),
        ("explicit_empty", r"--probabilities .*: expected tumor probability maps, found none"),
    ],
)
def test_bad_probability_maps_name_the_file(
    tmp_path: Path, folders: tuple[Path, Path], change: str, expected: str
) -> None:
    pred, gt = folders
    maps = pred / "probabilities"
    options: dict[str, object] = {}
    if change == "missing":
        (maps / "b_liver_tumor.nii.gz").unlink()
    elif change == "shape":
        write(maps / "a_liver_tumor.nii.gz", np.zeros((24, 24, 7), np.uint8))
    elif change == "affine":
        write(maps / "a_liver_tumor.nii.gz", np.zeros(SHAPE, np.uint8), spacing=(1.0, 1.0, 2.5))
    elif change == "fraction":
        write(maps / "a_liver_tumor.nii.gz", case_arrays("a")[0].astype(np.float32))
    elif change == "stranger":
        write(maps / "zz_liver_tumor.nii.gz", np.zeros(SHAPE, np.uint8))
    elif change == "explicit":
        options["probabilities"] = tmp_path / "nowhere"
    elif change == "explicit_empty":
        (tmp_path / "empty").mkdir()
        options["probabilities"] = tmp_path / "empty"
    with pytest.raises(InputError, match=expected):
        evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0, **options)  # type: ignore[arg-type]


def test_float_maps_holding_stored_values_are_accepted(folders: tuple[Path, Path]) -> None:
    pred, gt = folders
    p, _ = case_arrays("a")
    write(pred / "probabilities" / "a_liver_tumor.nii.gz", stored(p).astype(np.float32))
    report = evaluate_folders(pred, gt, label_map_gt="lits", n_bootstrap=0)
    assert report.froc is not None
    assert [p.sensitivity.value for p in report.froc.curves["liver"].operating_points] == [
        0.5, 0.75, 1.0, 1.0,
    ]  # fmt: skip


# --- real data: IRCAD 1.17 ------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
def test_ircad_p17_with_a_perturbed_probability_map(
    tmp_path: Path, p17: tuple[Volume, Volume]
) -> None:
    """The real label as ground truth; a probability map with the two tumors at 0.9 and 0.45
    (30% of each tumor's voxels dropped to 0.2 at random) and two false-positive cubes in the
    liver at 0.7 and 0.3."""
    _, seg = p17
    tumors, count = ndi.label(seg.array == 2, structure=np.ones((3, 3, 3), bool))
    assert count == 2
    rng = np.random.default_rng(0)
    p = np.zeros(seg.shape, np.float32)
    p[tumors == 1], p[tumors == 2] = 0.9, 0.45
    p[(tumors > 0) & (rng.random(seg.shape) < 0.3)] = 0.2
    liver = np.argwhere((seg.array == 1) & ~ndi.binary_dilation(tumors > 0, iterations=12))
    for corner, probability in zip(liver[[0, len(liver) // 2]], (0.7, 0.3)):
        x, y, z = corner
        assert not (tumors[x : x + 4, y : y + 4, z : z + 3] > 0).any()
        p[x : x + 4, y : y + 4, z : z + 3] = probability
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "ircadb01_p17.nii.gz").symlink_to(seg.path)
    maps = tmp_path / "pred" / "probabilities"
    maps.mkdir()
    nib.save(nib.Nifti1Image(stored(p), seg.affine), str(maps / "ircadb01_p17_liver_tumor.nii.gz"))
    report = evaluate_folders(tmp_path / "pred", tmp_path / "gt", label_map_gt="lits")
    assert report.froc is not None
    curve = report.froc.curves["liver"]
    assert curve.cases[0].lesion_peaks in ((230, 115), (115, 230))
    # one case: 1 FP per case allows the 0.7 cube, which comes with the 0.9 tumor; the 0.45 tumor
    # needs threshold 0.45, where the 0.7 cube is the only false positive until 0.3
    points = {p.fp_rate: p for p in curve.operating_points}
    assert (points[1.0].sensitivity.value, points[1.0].threshold) == (1.0, round(115 / 255, 6))
    assert curve.at_threshold(0.8) == (0.5, 0.0)
    assert curve.at_threshold(0.5) == (0.5, 1.0)
    assert curve.at_threshold(0.25) == (1.0, 2.0)
    assert curve.at_threshold(0.1) == (1.0, 2.0)  # the dropped voxels lie inside the tumors
