"""Input trust at the CLI: the right organs under the right label map, and clear messages.

Every refusal is checked through ``tumorsynth`` itself: exit code 2, what the message names, no
output left behind, inputs byte-for-byte unchanged. Phantom cases are small; the real CTs of
../shared/data check the IRCAD and TotalSegmentator mismatches that motivated the checks.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from cli_runner import Run, cli
from file_checks import file_hashes as hashes
from shared_data import require_data

from tumorsynth.io.nifti import Volume, save_volume


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, phantom) -> SimpleNamespace:
    """The phantom (liver on the patient's right) in several label styles."""
    ct, seg = phantom
    affine = ct.affine
    folder = tmp_path_factory.mktemp("trust_inputs")
    p = SimpleNamespace(dir=folder, ct=folder / "abdo_0000.nii.gz", seg=folder / "abdo.nii.gz")
    save_volume(Volume(ct.array, affine), p.ct)
    save_volume(Volume(seg.array, affine), p.seg)
    p.ircad = folder / "ircad_like.nii.gz"  # 1 liver, 5 kidney
    save_volume(Volume(np.where(np.isin(seg.array, (1, 5)), seg.array, 0), affine), p.ircad)
    ts = np.zeros_like(seg.array)
    ts[seg.array == 7], ts[seg.array == 1], ts[seg.array == 3] = 1, 5, 7
    x = (affine[:3, :3] @ np.indices(seg.shape).reshape(3, -1))[0].reshape(seg.shape)
    ts[(seg.array == 5) & (x > np.median(x))] = 2
    ts[(seg.array == 5) & (x <= np.median(x))] = 3
    p.ts = folder / "ts_like.nii.gz"  # TotalSegmentator ids
    save_volume(Volume(ts, affine), p.ts)
    p.link = folder / "link_to_ct.nii.gz"
    p.link.symlink_to(p.ct)
    p.flat = folder / "flat_0000.nii.gz"
    nib.save(nib.Nifti1Image(np.full((64, 48), 40, np.int16), np.eye(4)), str(p.flat))
    return p


def refused(run: Run, out: Path, *texts: str) -> None:
    assert run.code == 2, (run.out, run.err)
    assert run.err.count("error:") == 1 and "Traceback" not in run.err
    for text in texts:
        assert text in run.err, f"{text!r} not in {run.err!r}"
    assert not out.exists()


def synth(image: Path, label: Path, out: Path, *extra: object) -> Run:
    return cli(
        "synthesize", "--image", image, "--label", label, "--out", out, "--count", 1,
        "--no-progress", *extra,
    )  # fmt: skip


# --- label maps ----------------------------------------------------------------------------------


def test_ircad_style_label_with_totalsegmentator_is_refused(case, tmp_path: Path) -> None:
    before, out = hashes(case.dir), tmp_path / "out"
    run = synth(case.ct, case.ircad, out, "--label-map", "totalsegmentator")
    refused(run, out, str(case.ircad), "its liver (id 5)", "--label-map tumorsynth", "'lits'")
    assert hashes(case.dir) == before


def test_totalsegmentator_label_with_lits_is_refused(case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = synth(case.ct, case.ts, out, "--label-map", "lits")
    refused(
        run, out, str(case.ts), "its liver (id 1)", "wrong side", "--label-map totalsegmentator"
    )


def test_right_maps_run_without_label_warnings(case, tmp_path: Path) -> None:
    for label, name in ((case.ircad, "tumorsynth"), (case.ts, "totalsegmentator")):
        out = tmp_path / name
        with warnings.catch_warnings(record=True) as caught:
            run = synth(case.ct, label, out, "--label-map", name, "--size", "tiny")
        assert run.code == 0, run.err
        assert [w for w in caught if w.category.__name__ == "LabelMapWarning"] == []
        assert len((out / "manifest.jsonl").read_text().splitlines()) == 1


def test_no_default_label_map_the_label_is_scored_instead(case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = cli("synthesize", "--image", case.ct, "--label", case.ts, "--out", out, "--no-progress")
    refused(run, out, "--label-map: is required", str(case.ts), "'totalsegmentator'")
    assert "pass --label-map totalsegmentator" in run.err
    run = cli("synthesize", "--image", case.ct, "--label", case.ircad, "--out", out)
    refused(run, out, "pass --label-map tumorsynth", "'lits'")


def test_export_nnunet_without_label_map_names_the_preset(case, tmp_path: Path) -> None:
    healthy = tmp_path / "Dataset009_In"
    for sub, src in (("imagesTr", case.ct), ("labelsTr", case.ts)):
        (healthy / sub).mkdir(parents=True)
        name = "abdo_0000.nii.gz" if sub == "imagesTr" else "abdo.nii.gz"
        (healthy / sub / name).write_bytes(src.read_bytes())
    out = tmp_path / "Dataset010_Out"
    run = cli("export-nnunet", "--healthy", healthy, "--out", out, "--no-progress")
    refused(run, out, "--label-map: is required", "pass --label-map totalsegmentator")


# --- clear messages ------------------------------------------------------------------------------


@pytest.mark.parametrize("through", ["same path", "symlink"])
def test_same_file_as_image_and_label_is_refused(case, tmp_path: Path, through: str) -> None:
    label = case.ct if through == "same path" else case.link
    out = tmp_path / "out"
    run = synth(case.ct, label, out, "--label-map", "phantom")
    refused(run, out, "--image/--label", str(label), "are the same file")


def test_repeated_organ_is_refused(case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = synth(case.ct, case.seg, out, "--label-map", "phantom", "--organ", "liver,liver")
    refused(run, out, "--organ", "liver more than once")


def test_two_dimensional_image_is_not_told_to_split_a_4d_series(case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = synth(case.flat, case.seg, out, "--label-map", "phantom")
    refused(run, out, str(case.flat), "expected a 3-D image", "2-D shape (64, 48)")
    assert "4-D" not in run.err


def test_impossible_tumor_count_is_refused_up_front_with_what_fits(case, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = synth(case.ct, case.seg, out, "--label-map", "phantom", "--count", 500, "--size", "small")
    # Refused by the capacity check before any placement attempt (which would end in "no room
    # left" after seconds of tries), naming what does fit.
    refused(run, out, "500 small tumors cannot fit in the liver", "mL", "--count")
    assert "no room left" not in run.err


def test_label_map_json_with_a_duplicate_key_is_refused(case, tmp_path: Path) -> None:
    lmap = tmp_path / "map.json"
    lmap.write_text('{"liver": 1, "kidney": 5, "liver": 7}')
    out = tmp_path / "out"
    run = synth(case.ct, case.seg, out, "--label-map", lmap)
    refused(run, out, str(lmap), "'liver' is given twice")


def test_label_map_json_with_two_organs_on_one_id_is_refused(case, tmp_path: Path) -> None:
    lmap = tmp_path / "map.json"
    lmap.write_text(json.dumps({"liver": 1, "spleen": 1}))
    out = tmp_path / "out"
    run = synth(case.ct, case.seg, out, "--label-map", lmap)
    refused(run, out, str(lmap), "'liver' and 'spleen' share label id 1")


# --- demo ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "texts"),
    [
        (
            lambda p: [
                "--image",
                p.dir / "absent.nii.gz",
                "--label",
                p.seg,
                "--label-map",
                "phantom",
            ],
            ["absent.nii.gz", "does not exist"],
        ),  # fmt: skip
        (
            lambda p: ["--image", p.ct, "--label", p.seg, "--label-map", "nonsense"],
            ["--label-map", "expected a preset"],
        ),  # fmt: skip
        (
            lambda p: ["--image", p.ct, "--label", p.ts],
            ["--label-map: is required", "totalsegmentator"],
        ),  # fmt: skip
        (
            lambda p: ["--image", p.ct, "--label", p.ircad, "--label-map", "totalsegmentator"],
            ["its liver (id 5)"],
        ),  # fmt: skip
    ],
    ids=["missing image", "bad label map", "no label map", "wrong label map"],
)
def test_demo_with_bad_input_leaves_no_folder(case, tmp_path: Path, flags, texts) -> None:
    out = tmp_path / "demo_out"
    before = hashes(case.dir)
    run = cli("demo", "--out", out, "--no-progress", *flags(case))
    refused(run, out, *texts)
    assert hashes(case.dir) == before


# --- evaluate ------------------------------------------------------------------------------------


def _evaluate_inputs(tmp_path: Path, gt_ids: tuple[int, int], pred_ids: tuple[int, int]):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for folder, (organ, tumor) in ((gt, gt_ids), (pred, pred_ids)):
        folder.mkdir()
        array = np.zeros((40, 40, 12), np.uint8)
        array[4:36, 4:36, 1:11] = organ
        array[10:20, 10:20, 3:7] = tumor
        nib.save(nib.Nifti1Image(array, np.eye(4)), str(folder / "c1.nii.gz"))
    return pred, gt


def test_evaluate_refuses_ground_truth_in_another_convention(tmp_path: Path) -> None:
    pred, gt = _evaluate_inputs(tmp_path, gt_ids=(1, 2), pred_ids=(5, 6))  # KiTS-style GT
    out = tmp_path / "report"
    run = cli(
        "evaluate", "--pred", pred, "--gt", gt, "--label-map", "tumorsynth", "--organ", "kidney",
        "--out", out, "--no-progress", "--bootstrap", 0,
    )  # fmt: skip
    refused(run, out, "--label-map", "[6]", "ids [1, 2]", "another label convention")


def test_evaluate_refuses_predictions_in_another_convention(tmp_path: Path) -> None:
    pred, gt = _evaluate_inputs(tmp_path, gt_ids=(1, 2), pred_ids=(5, 6))
    out = tmp_path / "report"
    run = cli(
        "evaluate", "--pred", pred, "--gt", gt, "--label-map", "kits", "--out", out,
        "--no-progress", "--bootstrap", 0,
    )  # fmt: skip
    refused(run, out, "--label-map (for --pred)", "ids [5, 6]", "not in the map", "tumorsynth")


# --- real CTs ------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("folder", "image", "label", "name", "texts"),
    [
        (
            "ircadb01_p07",
            "ircadb01_p07_ct.nii.gz",
            "ircadb01_p07_label.nii.gz",
            "totalsegmentator",
            ["its liver (id 5)", "'lits'", "'msd'"],
        ),
        (
            "totalseg_example",
            "example_ct_sm.nii.gz",
            "example_seg.nii.gz",
            "lits",
            ["its liver (id 1)", "--label-map totalsegmentator"],
        ),
    ],
    ids=["ircad p07 as totalsegmentator", "totalseg example as lits"],
)
def test_shared_cts_under_the_wrong_map_are_refused(
    tmp_path: Path, folder: str, image: str, label: str, name: str, texts: list[str]
) -> None:
    data, out = require_data(folder), tmp_path / "out"
    run = synth(data / image, data / label, out, "--label-map", name)
    refused(run, out, label, *texts)
