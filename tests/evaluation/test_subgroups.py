"""Subgroups of a per-case metadata table: reading and checking it, binning, per-subgroup metrics
counted by hand, the flags, and the report."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tumorsynth.errors import InputError
from tumorsynth.evaluation.folders import evaluate_folders
from tumorsynth.evaluation.lesions import LesionRecord
from tumorsynth.evaluation.metrics import CaseEvaluation
from tumorsynth.evaluation.report import write_report
from tumorsynth.evaluation.subgroups import (
    MISSING,
    parse_bin_specs,
    read_metadata,
    summarize_subgroups,
)
from tumorsynth.evaluation.summary import summarize_cases

IDS = [f"c{i:02d}" for i in range(12)]


def table(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def lesion(detected: bool, diameter_mm: float = 12.0) -> LesionRecord:
    return LesionRecord(
        index=1, volume_ml=1.0, radius_mm=diameter_mm / 2, diameter_mm=diameter_mm,
        stratum="[5,10)", early_stage=diameter_mm < 20, detected=detected,
        center_vox=[0.0, 0.0, 0.0],
    )  # fmt: skip


def case(case_id: str, dsc: float, *, fp: int = 0) -> CaseEvaluation:
    """A case with one lesion, found when ``dsc > 0``, and ``fp`` false-positive components."""
    return CaseEvaluation(
        case_id, dsc, dsc, True, [lesion(dsc > 0)], int(dsc > 0), fp, predicted_positive=dsc > 0
    )


# --- reading the table ---------------------------------------------------------------------------


def test_columns_are_categories_or_bins(tmp_path: Path) -> None:
    rows = ["case_id,site,age,sex,phase,note"]
    ages = [31, 35, 42, 47, 50, 55, 58, 61, 66, 70, 74, 80]
    for i, (cid, age) in enumerate(zip(IDS, ages)):
        site = "A" if i < 6 else "B"
        sex = "" if i == 11 else "FM"[i % 2]
        rows.append(f"{cid}.nii.gz,{site},{age},{sex},{1 + i % 2},x")
    meta = read_metadata(table(tmp_path / "m.csv", "\n".join(rows) + "\n"), IDS)
    columns = {c.name: c for c in meta.columns}
    assert columns["site"].kind == "categorical" and columns["site"].groups == ("A", "B")
    assert columns["sex"].groups == ("F", "M", MISSING) and columns["sex"].of_case["c11"] == MISSING
    assert columns["phase"].kind == "categorical"  # numbers, but only 2 distinct values
    age = columns["age"]
    # tertiles of the 12 sorted ages, linear interpolation (numpy's default): position
    # 11/3 = 3.67 lies between 47 and 50 -> 49.0; position 22/3 = 7.33 between 61 and 66 -> 62.67
    assert age.kind == "quantile bins" and age.edges == (49.0, 62.67)
    assert age.groups == ("< 49", "[49, 62.67)", ">= 62.67")
    assert [age.of_case[c] for c in ("c03", "c04", "c07", "c08")] == [
        "< 49", "[49, 62.67)", "[49, 62.67)", ">= 62.67",
    ]  # fmt: skip

    bins = parse_bin_specs(["age=40,60", "phase=categorical", "note=categorical"])
    meta = read_metadata(tmp_path / "m.csv", IDS, bins=bins)
    age = {c.name: c for c in meta.columns}["age"]
    assert age.kind == "bins" and age.groups == ("< 40", "[40, 60)", ">= 60")
    assert sum(g == "< 40" for g in age.of_case.values()) == 2  # 31, 35
    assert sum(g == ">= 60" for g in age.of_case.values()) == 5  # 61, 66, 70, 74, 80
    four = read_metadata(tmp_path / "m.csv", IDS, bins={"age": 4})
    assert len({c.name: c for c in four.columns}["age"].groups) == 4


def test_cases_outside_the_table_or_the_evaluation_warn(tmp_path: Path) -> None:
    path = table(tmp_path / "m.csv", "case_id,site\nc00,A\nc01,B\nother,C\n")
    with pytest.warns(UserWarning) as caught:
        meta = read_metadata(path, ["c00", "c01", "c02"])
    texts = " ".join(str(w.message) for w in caught)
    assert "1 listed cases are not in the evaluation and are ignored (other)" in texts
    assert "1 of 3 evaluated cases are not in the table" in texts
    assert (meta.unknown_cases, meta.unlisted_cases) == (("other",), ("c02",))
    assert meta.columns[0].groups == ("A", "B", MISSING)


@pytest.mark.parametrize(
    ("text", "bins", "expected"),
    [
        ("id,site\nc00,A\n", [], r"m\.csv: expected a 'case_id' column .*found \['id', 'site'\]"),
        ("", [], r"m\.csv: expected a 'case_id' column .*an empty file"),
        ("case_id\nc00\n", [], r"expected columns besides 'case_id', found none"),
        ("case_id,a,a\nc00,1,2\n", [], r"expected each column once, found \['a'\] twice"),
        ("case_id,site\nc00,A\nc01,B\nc00,C\n", [], r"m\.csv, line 4: case 'c00' is listed twice "
         r"\(lines 2 and 4\)"),
        ("case_id,site\nc00,A\n,B\n", [], r"m\.csv, line 3: expected a case id, found an empty"),
        ("case_id,site\nc00,A,extra\n", [], r"m\.csv, line 2: expected 2 cells like the header"),
        ("case_id,site\nx1,A\nx2,B\n", [], r"m\.csv: expected rows for the evaluated cases, found "
         r"none of them \(table: x1, x2"),
        ("case_id,age\nc00,40\nc01,old\n", ["age=50"], r"m\.csv, line 3: column 'age' has bins "
         r"from --metadata-bins but holds 'old'"),
        ("case_id,age\nc00,40\nc01,\"x\"\n", ["age=q2"], r"line 3: column 'age' has bins"),
        ("case_id,age\nc00,40\n", ["weight=50"], r"--metadata-bins weight: .* has no column "
         r"'weight'; it has \['age'\]"),
    ],
)  # fmt: skip
def test_bad_tables_name_the_file_and_line(
    tmp_path: Path, text: str, bins: list[str], expected: str
) -> None:
    path = table(tmp_path / "m.csv", text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=expected):
            read_metadata(path, ["c00", "c01"], bins=parse_bin_specs(bins))


def test_bad_bin_specs_and_missing_file(tmp_path: Path) -> None:
    for spec, expected in [
        ("age", "expected COLUMN=EDGES"),
        ("age=60,40", "increasing edges"),
        ("age=a,b", "comma-separated numbers"),
        ("age=q1", "at least 2 quantile bins"),
    ]:
        with pytest.raises(InputError, match=f"--metadata-bins {spec}: .*{expected}"):
            parse_bin_specs([spec])
    with pytest.raises(InputError, match="column 'age' is given twice"):
        parse_bin_specs(["age=40", "age=q2"])
    with pytest.raises(InputError, match=r"--metadata .*nowhere\.csv: file does not exist"):
        read_metadata(tmp_path / "nowhere.csv", IDS)


# --- per-subgroup metrics and flags ------------------------------------------------------------


def test_subgroup_metrics_and_flags_by_hand(tmp_path: Path) -> None:
    """Site A: 6 cases, DSC 0.9, every lesion found, no FP. Site B: 6 cases, DSC 0.3 but lesions
    found in 3, 2 FP each. Site C: 2 cases (too few to flag)."""
    cases = [case(f"a{i}", 0.9) for i in range(6)]
    cases += [case(f"b{i}", 0.3 if i < 3 else 0.0, fp=2) for i in range(6)]
    cases += [case("c0", 0.0), case("c1", 0.0)]
    rows = "\n".join(f"{c.case_id},{c.case_id[0].upper()}" for c in cases)
    meta = read_metadata(
        table(tmp_path / "m.csv", "case_id,site\n" + rows + "\n"), [c.case_id for c in cases]
    )
    overall = summarize_cases(cases, n_bootstrap=500, seed=0)
    assert overall.dsc_mean.value == pytest.approx((6 * 0.9 + 3 * 0.3) / 14)  # 0.45
    assert overall.fp_per_case.value == pytest.approx(12 / 14)
    output = summarize_subgroups(cases, meta, overall, n_bootstrap=500, seed=0)
    a, b, c = output.subgroups
    assert (a.name, len(a.case_ids), b.name, c.name) == ("A", 6, "B", "C")
    assert b.summary.dsc_mean.value == pytest.approx(0.15)
    assert b.summary.lesion_sensitivity.value == 0.5 and b.summary.fp_per_case.value == 2.0
    # A: every resample gives DSC 0.9, sensitivity 1, FP 0 -> wholly better than overall
    assert a.flags == {
        "dsc_mean": "better", "nsd_mean": "better", "lesion_sensitivity": "better",
        "early_stage_sensitivity": "better", "fp_per_case": "better",
        "patient_sensitivity": "better",
    }  # fmt: skip
    # B: DSC at most 0.3 in every resample (< 0.45), FP 2 per case in every one (> 0.86)
    assert b.flags["dsc_mean"] == "worse" and b.flags["fp_per_case"] == "worse"
    assert "lesion_sensitivity" not in b.flags  # 0.5 with an interval reaching 0.71 and more
    assert c.flags == {} and "dsc_mean" in c.few_cases  # 2 cases: not judged
    assert "patient_specificity" in a.few_cases  # no controls at all
    assert output.worse() == [b]
    data = output.to_dict()
    assert data["columns"][0]["groups"][1]["flags"]["dsc_mean"] == "worse"
    assert data["columns"][0]["groups"][1]["summary"]["dsc_mean"] == pytest.approx(0.15)


# --- through the folder evaluation and the report ----------------------------------------------


def test_folder_evaluation_with_metadata_writes_subgroups(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for i in range(8):
        label = np.zeros((16, 16, 6), np.uint8)
        label[4:10, 4:10, 1:4] = 2
        guess = label.copy() if i < 4 else np.zeros_like(label)  # site B misses everything
        for folder, array in ((gt, label), (pred, guess)):
            folder.mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(array, affine), str(folder / f"k{i}.nii.gz"))
    rows = [f"k{i},{'AB'[i // 4]},{30 + 5 * i}" for i in range(8)]
    meta = table(tmp_path / "meta.csv", "case_id,site,age\n" + "\n".join(rows) + "\n")
    report = evaluate_folders(
        pred, gt, label_map_gt="lits", n_bootstrap=200, metadata=meta,
        metadata_bins={"age": (40.0,)},
    )  # fmt: skip
    assert report.subgroups is not None
    by_name = {(s.column, s.name): s for s in report.subgroups.subgroups}
    assert by_name[("site", "A")].summary.dsc_mean.value == 1.0
    assert by_name[("site", "B")].summary.lesion_sensitivity.value == 0.0
    assert len(by_name[("age", "< 40")].case_ids) == 2  # ages 30, 35
    assert report.settings["metadata_bins"] == {"age": [40.0]}
    written = write_report(report, tmp_path / "out")
    data = json.loads(written["json"].read_text())["subgroups"]
    assert data["metadata"].endswith("meta.csv") and data["min_cases_to_flag"] == 5
    assert [c["name"] for c in data["columns"]] == ["site", "age"]
    assert data["columns"][1]["edges"] == [40.0] and data["columns"][1]["kind"] == "bins"
    markdown = written["markdown"].read_text()
    assert "## Subgroups (metadata:" in markdown and "### site (categorical)" in markdown
    assert "| B | 4 | 0.00 (0.00 to 0.00) †" in markdown  # 4 cases: shown, not flagged
    assert "Too few cases to judge" in markdown
    with Image.open(written["subgroup_plot"]) as image:
        image.verify()
        assert image.format == "PNG"
    assert math.isnan(by_name[("site", "A")].summary.patient_specificity.value)
