"""run_batch: a dataset in, an nnU-Net v2 dataset of synthetic tumors out, resumable, any workers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from batch_helpers import batch_settings as settings
from batch_helpers import write_phantoms
from file_checks import file_hashes

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import CaseRef, discover_cases
from tumorsynth.io.records import MANIFEST_NAME, read_manifest
from tumorsynth.pipelines.batch import run_batch
from tumorsynth.pipelines.synthesize import TumorRequest

CASE_IDS = ("ph_000", "ph_001", "ph_002")
SHAPE, SPACING = (96, 80, 48), (3.5, 3.5, 4.0)
LIVER, LIVER_TUMOR = 1, 2
OLD_MTIME_NS = 1_000_000_000 * 1_000_000_000  # 2001-09-09: a time no fresh write can have


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An nnU-Net v2 folder of three small phantoms (seeds 0, 1, 2); tests must not change it."""
    root = write_phantoms(
        tmp_path_factory.mktemp("inputs") / "Dataset001_Phantom", CASE_IDS, SHAPE, SPACING
    )
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "liver": 1},
                "numTraining": len(CASE_IDS),
                "file_ending": ".nii.gz",
            }
        )
    )
    return root


@pytest.fixture(scope="module")
def cases(dataset: Path) -> list[CaseRef]:
    return discover_cases(dataset)


@pytest.fixture(scope="module")
def broken_dataset(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same cases, but the last case's label has no liver."""
    root = tmp_path_factory.mktemp("broken") / "Dataset002_NoLiver"
    shutil.copytree(dataset, root)
    path = root / "labelsTr" / f"{CASE_IDS[-1]}.nii.gz"
    img = nib.load(str(path))
    label = np.asarray(img.dataobj).copy()
    label[label == LIVER] = 0
    nib.save(nib.Nifti1Image(label, img.affine, img.header), str(path))
    return root


@pytest.fixture(scope="module")
def reference(cases: list[CaseRef], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted single-process run with the default settings (read only)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    run_batch(cases, out, settings(), workers=1, progress=False)
    return out


def manifest_dicts(out: Path) -> list[dict]:
    records = [r.to_dict() for r in read_manifest(out / MANIFEST_NAME)]
    return sorted(records, key=lambda r: (r["case_id"], r["variant"], r["tumor_index"]))


def output_files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz"))


def record_keys(out: Path) -> list[tuple[str, int, int]]:
    return [(r.case_id, r.variant, r.tumor_index) for r in read_manifest(out / MANIFEST_NAME)]


def assert_complete(
    out: Path, case_ids: tuple[str, ...], per_case: int = 1, tumors: int = 1
) -> None:
    """Every variant listed exactly once with its files, nothing else, no temporary files."""
    keys = record_keys(out)
    assert len(keys) == len(set(keys)), f"duplicate records: {keys}"
    expected = {(c, k, t) for c in case_ids for k in range(per_case) for t in range(tumors)}
    assert set(keys) == expected
    names = [f"{c}_syn{k}" for c in case_ids for k in range(per_case)]
    assert output_files(out) == sorted(
        [f"imagesTr/{n}_0000.nii.gz" for n in names] + [f"labelsTr/{n}.nii.gz" for n in names]
    )
    for record in read_manifest(out / MANIFEST_NAME):
        assert (out / str(record.image_path)).is_file() and (out / str(record.label_path)).is_file()
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["numTraining"] == len(list((out / "imagesTr").glob("*_0000.nii.gz"))) == len(names)


def stop_after_first_case():
    finished: list[str] = []

    def on_case(case_id: str, records: list) -> None:
        finished.append(case_id)
        raise KeyboardInterrupt

    return on_case, finished


def age(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    """Set the files' mtime far in the past; return (mtime_ns, inode) to compare later."""
    for path in paths:
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in paths}


# -- results -----------------------------------------------------------------------------------
def test_outputs_are_nnunet_cases_with_tumors_and_the_input_grid(reference, cases):
    assert_complete(reference, CASE_IDS)
    records = read_manifest(reference / MANIFEST_NAME)
    for case, record in zip(cases, sorted(records, key=lambda r: r.case_id)):
        source = nib.load(str(case.image))
        image = nib.load(str(reference / str(record.image_path)))
        label = np.asarray(nib.load(str(reference / str(record.label_path))).dataobj)
        assert image.shape == SHAPE and image.get_data_dtype() == source.get_data_dtype()
        np.testing.assert_allclose(image.affine, source.affine)
        assert record.organ == "liver" and record.n_voxels == int((label == LIVER_TUMOR).sum()) > 0
        assert record.source_image == str(Path(case.image).resolve())
        changed = np.asarray(image.dataobj) != np.asarray(source.dataobj)
        assert changed.any() and changed.mean() < 0.01  # the rest of the scan is untouched


def test_results_do_not_depend_on_worker_count(cases, tmp_path):
    chosen = settings(per_case=2)
    serial = run_batch(cases, tmp_path / "w1", chosen, workers=1, progress=False)
    parallel = run_batch(cases, tmp_path / "w2", chosen, workers=2, progress=False)
    assert serial.variants_done == parallel.variants_done == 2 * len(CASE_IDS)
    assert_complete(tmp_path / "w1", CASE_IDS, per_case=2)
    assert manifest_dicts(tmp_path / "w1") == manifest_dicts(tmp_path / "w2")
    assert output_files(tmp_path / "w1") == output_files(tmp_path / "w2")
    for name in output_files(tmp_path / "w1"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    # Different variants of one case are different tumors.
    seeds = {(r["case_id"], r["variant"]): r["seed"] for r in manifest_dicts(tmp_path / "w1")}
    assert len(set(seeds.values())) == len(seeds)


def test_progress_false_prints_nothing(cases, tmp_path, capfd):
    run_batch(cases[:1], tmp_path / "quiet", settings(), progress=False)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    run_batch(cases[:1], tmp_path / "loud", settings(), progress=True)
    assert (
        "synthesizing" in capfd.readouterr().err
    )  # the bar exists, so the check above means something


# -- resume --------------------------------------------------------------------------------------
def test_interrupted_run_resumes_without_duplicates(cases, reference, tmp_path):
    out = tmp_path / "out"
    on_case, finished = stop_after_first_case()
    with pytest.raises(KeyboardInterrupt):
        run_batch(cases, out, settings(), progress=False, on_case=on_case)
    assert finished == [CASE_IDS[0]]
    assert_complete(out, CASE_IDS[:1])
    first_files = age([out / name for name in output_files(out)])
    first_records = manifest_dicts(out)

    result = run_batch(cases, out, settings(), progress=False)
    assert result.variants_skipped == 1 and result.variants_done == len(CASE_IDS) - 1
    assert {r.case_id for r in result.records} == set(CASE_IDS[1:])
    assert_complete(out, CASE_IDS)
    for path, stamp in first_files.items():
        assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp, f"{path} was rewritten"
    assert manifest_dicts(out)[:1] == first_records
    # An interrupted and resumed run gives what an uninterrupted one gives.
    assert manifest_dicts(out) == manifest_dicts(reference)
    for name in output_files(out):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name

    again = run_batch(cases, out, settings(), progress=False)  # all done: nothing to do
    assert again.variants_done == 0 and again.variants_skipped == len(CASE_IDS)
    assert_complete(out, CASE_IDS)


def test_manifest_cut_off_mid_line_is_repaired(cases, reference, tmp_path):
    out = tmp_path / "out"
    on_case, _ = stop_after_first_case()
    with pytest.raises(KeyboardInterrupt):
        run_batch(cases, out, settings(), progress=False, on_case=on_case)
    manifest = out / MANIFEST_NAME
    finished = manifest.read_text()
    next_line = (reference / MANIFEST_NAME).read_text().splitlines()[1]
    with manifest.open("a") as handle:  # the crash came while the next record was written
        handle.write(next_line[: len(next_line) // 2])

    run_batch(cases, out, settings(), progress=False)
    text = manifest.read_text()
    assert text.startswith(finished) and text.endswith("\n")
    for line in text.splitlines():
        json.loads(line)  # every line is a whole record again
    assert_complete(out, CASE_IDS)
    assert manifest_dicts(out) == manifest_dicts(reference)


def test_variant_with_partly_written_records_is_redone(cases, tmp_path):
    two = settings(requests=(TumorRequest("liver", 2, "small"),))
    out = tmp_path / "out"
    run_batch(cases, out, two, progress=False)
    manifest = out / MANIFEST_NAME
    lines = manifest.read_text().splitlines(keepends=True)
    assert len(lines) == 2 * len(CASE_IDS)
    manifest.write_text("".join(lines[:-1]) + lines[-1][:40])  # crash in the last tumor's line
    run_batch(cases, out, two, progress=False)
    assert_complete(out, CASE_IDS, tumors=2)


def test_rerun_with_other_settings_is_refused(cases, tmp_path):
    out = tmp_path / "out"
    on_case, _ = stop_after_first_case()
    with pytest.raises(KeyboardInterrupt):
        run_batch(cases, out, settings(), progress=False, on_case=on_case)
    before = file_hashes(out)
    for other in (
        settings(seed=8),
        settings(per_case=2),
        settings(requests=(TumorRequest("liver", 1, "tiny"),)),
    ):
        with pytest.raises(InputError, match="other settings"):
            run_batch(cases, out, other, progress=False)
    assert file_hashes(out) == before
    run_batch(cases, out, settings(), progress=False)  # the original settings still resume
    assert_complete(out, CASE_IDS)


# -- bad input -----------------------------------------------------------------------------------
def test_failing_case_is_named_and_finished_cases_stay(broken_dataset, tmp_path):
    broken_cases = discover_cases(broken_dataset)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=rf"{CASE_IDS[-1]}_0000\.nii\.gz.*liver"):
        run_batch(broken_cases, out, settings(), workers=1, progress=False)
    assert_complete(out, CASE_IDS[:-1])
    for name in output_files(out):
        assert nib.load(str(out / name)).get_fdata().shape == SHAPE  # whole, readable files


def test_failing_case_is_named_with_workers(broken_dataset, tmp_path):
    broken_cases = discover_cases(broken_dataset)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=rf"{CASE_IDS[-1]}_0000\.nii\.gz"):
        run_batch(broken_cases, out, settings(), workers=2, progress=False)
    keys = record_keys(out)
    assert len(keys) == len(set(keys))
    assert not [p for p in out.rglob("*") if ".part" in p.name]
    listed = {r.image_path for r in read_manifest(out / MANIFEST_NAME)}
    assert listed == {f"imagesTr/{n}" for n in os.listdir(out / "imagesTr")}
