"""run_batch keeps runs apart: one run per folder, settings and sources pinned before the first
case, and a folder whose files are exactly its manifest's after any failure."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import nibabel as nib
import pytest
from batch_helpers import SMALL_SHAPE, SMALL_SPACING, assert_manifest_is_the_files, write_phantoms
from batch_helpers import batch_settings as settings
from file_checks import file_hashes as snapshot

import tumorsynth.pipelines.batch as batch_module
from tumorsynth.errors import InputError, OutputError
from tumorsynth.io.datasets import CaseRef, discover_cases
from tumorsynth.io.identity import sha256_of
from tumorsynth.io.nifti import save_volume
from tumorsynth.io.records import MANIFEST_NAME, read_manifest
from tumorsynth.io.run_lock import LOCK_NAME, run_lock
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.batch import run_batch
from tumorsynth.pipelines.synthesize import TumorRequest

CASE_IDS = ("t0", "t1", "t2")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small phantoms (seeds 0-2) plus a fourth scan (seed 9) to swap in; read only."""
    root = write_phantoms(tmp_path_factory.mktemp("trust") / "Dataset001_Phantom", CASE_IDS)
    other, _ = make_phantom(9, shape=SMALL_SHAPE, spacing_mm=SMALL_SPACING)
    save_volume(other, root.parent / "other_0000.nii.gz")
    return root


@pytest.fixture
def dataset(source: Path, tmp_path: Path) -> Path:
    """A copy the test may change."""
    return Path(shutil.copytree(source, tmp_path / "data"))


def stop_after_first_case(case_id: str, records: list) -> None:
    raise KeyboardInterrupt


def interrupted_run(dataset: Path, out: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_batch(
            discover_cases(dataset),
            out,
            settings(),
            progress=False,
            on_case=stop_after_first_case,
        )


# -- one run per folder --------------------------------------------------------------------------
def test_a_folder_held_by_a_live_run_is_refused_naming_the_holder(dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tumorsynth.io.run_lock import run_lock\n"
            f"with run_lock({str(out)!r}):\n    print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"another tumorsynth run.*pid {holder.pid} on host"):
            run_batch(discover_cases(dataset), out, settings(), progress=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of ours written
    finally:
        holder.communicate("", timeout=30)
    result = run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert result.variants_done == len(CASE_IDS)
    assert not (out / LOCK_NAME).exists()


def test_a_second_run_in_another_thread_of_this_process_is_refused(dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            run_batch(discover_cases(dataset), out, settings(), progress=False)
        except OutputError as exc:
            errors.append(exc)

    with run_lock(out):  # the first run, here; re-entrant only within its own thread
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(60)
    assert len(errors) == 1 and "another tumorsynth run" in str(errors[0])
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_lock_file_left_by_a_dead_process_does_not_block(dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text('{"pid": 4194999, "host": "gone", "started": "2020-01-01"}\n')
    result = run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert result.variants_done == len(CASE_IDS)
    assert_manifest_is_the_files(out)


# -- settings and sources pinned before the first case ------------------------------------------
def test_run_json_is_written_before_the_first_case_starts(dataset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    seen = []
    real = batch_module.synthesize_case

    def spy(*args, **kwargs):
        seen.append(json.loads((out / "run.json").read_text())["settings"]["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_module, "synthesize_case", spy)
    run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert seen == [7] * len(CASE_IDS)


def test_other_settings_are_named_key_by_key(dataset, tmp_path):
    out = tmp_path / "out"
    interrupted_run(dataset, out)
    before = snapshot(out)
    other = settings(seed=8, requests=(TumorRequest("liver", 1, "tiny"),))
    with pytest.raises(InputError, match="other settings") as caught:
        run_batch(discover_cases(dataset), out, other, progress=False)
    message = str(caught.value)
    assert "seed: 7 in run.json, 8 now" in message
    assert "requests[0].size: 'small' in run.json, 'tiny' now" in message
    assert "per_case" not in message  # only what differs
    assert snapshot(out) == before


def test_records_pin_their_sources_by_content(dataset, tmp_path):
    out = tmp_path / "out"
    run_batch(discover_cases(dataset), out, settings(), progress=False)
    for record in read_manifest(out / MANIFEST_NAME):
        image = dataset / "imagesTr" / f"{record.case_id}_0000.nii.gz"
        label = dataset / "labelsTr" / f"{record.case_id}.nii.gz"
        assert record.source_image_sha256 == sha256_of(image)
        assert record.source_label_sha256 == sha256_of(label)
        assert record.extra["source_bytes"] == {
            "image": image.stat().st_size,
            "label": label.stat().st_size,
        }


def test_a_done_case_whose_source_changed_is_refused(dataset, source, tmp_path):
    out = tmp_path / "out"
    interrupted_run(dataset, out)
    done = dataset / "imagesTr" / f"{CASE_IDS[0]}_0000.nii.gz"
    original = done.read_bytes()
    before = snapshot(out)

    shutil.copyfile(source.parent / "other_0000.nii.gz", done)  # another CT, same name
    with pytest.raises(InputError, match=rf"{done.name}.*'{CASE_IDS[0]}'.*changed.*size"):
        run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert snapshot(out) == before

    same_size = bytearray(original)
    same_size[4] ^= 0xFF  # the gzip header's time stamp: same size, still a valid file
    done.write_bytes(bytes(same_size))
    with pytest.raises(InputError, match=rf"{done.name}.*changed.*sha256"):
        run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert snapshot(out) == before

    done.write_bytes(original)  # the original back: the run resumes
    result = run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert result.variants_skipped == 1 and result.variants_done == len(CASE_IDS) - 1


# -- manifest = files ----------------------------------------------------------------------------
def test_leftovers_of_a_killed_run_are_removed(dataset, tmp_path):
    out = tmp_path / "out"
    interrupted_run(dataset, out)
    done = sorted(p.name for p in (out / "imagesTr").iterdir())
    # What a SIGKILL mid-case leaves: a variant's image without its record, temporaries.
    (out / "imagesTr" / f"{CASE_IDS[1]}_syn0_0000.nii.gz").write_bytes(b"half a case")
    (out / "imagesTr" / "gone_syn3_0000.nii.gz").write_bytes(b"a case no longer listed")
    (out / "labelsTr" / f".{CASE_IDS[2]}_syn0.x1y2z3.part.nii.gz").write_bytes(b"partial")
    (out / ".manifest.a1b2c3.part.jsonl").write_bytes(b"partial")
    (out / "imagesTr" / "notes.txt").write_text("not ours: kept")

    run_batch(discover_cases(dataset), out, settings(), progress=False)
    (out / "imagesTr" / "notes.txt").unlink()
    assert_manifest_is_the_files(out)
    assert len(read_manifest(out / MANIFEST_NAME)) == len(CASE_IDS)
    assert set(done) < {p.name for p in (out / "imagesTr").iterdir()}


@pytest.mark.parametrize(
    ("role", "fed_back"),
    [("image", "imagesTr/x_syn5_0000.nii.gz"), ("label", "labelsTr/x_syn5.nii.gz")],
)
def test_an_input_where_the_run_removes_unlisted_files_is_refused(
    dataset, tmp_path, role, fed_back
):
    out = tmp_path / "out"
    run_batch(discover_cases(dataset), out, settings(), progress=False)
    sources = {
        "image": dataset / "imagesTr" / "t0_0000.nii.gz",
        "label": dataset / "labelsTr" / "t0.nii.gz",
    }
    shutil.copy(sources[role], out / fed_back)  # a file the manifest does not list, used as input
    sources[role] = out / fed_back
    before = snapshot(out)
    with pytest.raises(InputError, match=rf"holds the input .*{fed_back}.*outputs would mix"):
        run_batch(
            [CaseRef("x", sources["image"], sources["label"])], out, settings(), progress=False
        )
    assert snapshot(out) == before  # the input is still there


@pytest.mark.parametrize("workers", [1, 2])
def test_disk_full_mid_batch_names_the_file_and_keeps_finished_variants(
    dataset, tmp_path, monkeypatch, workers
):
    real = nib.save
    calls: list[str] = []

    def full_from_the_third_file(img: nib.Nifti1Image, filename: str) -> None:
        calls.append(filename)  # per process: each worker fills its own "disk"
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        real(img, filename)

    monkeypatch.setattr(nib, "save", full_from_the_third_file)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"imagesTr/t\d_syn1_0000\.nii\.gz: disk full"):
        run_batch(
            discover_cases(dataset), out, settings(per_case=2), workers=workers, progress=False
        )
    records = read_manifest(out / MANIFEST_NAME)
    assert {(r.case_id, r.variant) for r in records} >= {(CASE_IDS[0], 0)}  # variant 0 stays
    assert all(r.variant == 0 for r in records)
    assert_manifest_is_the_files(out)

    monkeypatch.setattr(nib, "save", real)  # space freed: the run resumes
    run_batch(discover_cases(dataset), out, settings(per_case=2), workers=workers, progress=False)
    assert len(read_manifest(out / MANIFEST_NAME)) == 2 * len(CASE_IDS)
    assert_manifest_is_the_files(out)


def test_a_failed_first_run_leaves_nothing(dataset, tmp_path, monkeypatch):
    def full(img: nib.Nifti1Image, filename: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(nib, "save", full)
    out = tmp_path / "new" / "out"
    with pytest.raises(OutputError, match="disk full"):
        run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("kind", ["file", "broken symbolic link"])
def test_out_that_is_not_a_folder_is_refused(dataset, tmp_path, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("a file")
    else:
        out.symlink_to(tmp_path / "nowhere" / "out")
    with pytest.raises(OutputError, match=f"expected a folder, found a {kind}"):
        run_batch(discover_cases(dataset), out, settings(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]
    assert out.is_symlink() or out.read_text() == "a file"


def test_a_batch_without_a_label_map_is_refused_before_any_output(tmp_path: Path) -> None:
    case = CaseRef("c0", tmp_path / "c0_0000.nii.gz", tmp_path / "c0.nii.gz")
    with pytest.raises(InputError, match="label_map: is required"):
        run_batch([case], tmp_path / "out", settings(label_map=""), progress=False)
    assert not (tmp_path / "out").exists()
