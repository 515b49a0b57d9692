"""``tumorsynth replay`` with manifests that are shared, edited, cut or hostile (issue 8).

Every refusal is checked through the real entry point: exit code 2, a message naming the manifest
line and the field, no output left (or, after finished variants, a consistent folder), inputs
byte-for-byte unchanged and nothing written outside ``--out``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from cli_runner import Run, cli
from file_checks import file_hashes as hashes
from shared_data import require_data

from tumorsynth.io.identity import source_sha256
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.phantom import make_phantom

CASE = "abdo"
SHAPE = (128, 108, 64)
SPACING = (2.5, 2.5, 3.0)


def records_of(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def volume(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def synthesize(ct: Path, seg: Path, out: Path) -> Run:
    return cli(
        "synthesize", "--image", ct, "--label", seg, "--label-map", "phantom", "--organ", "liver",
        "--count", 2, "--size", "small", "--per-case", 2, "--seed", 3, "--out", out, "--no-progress",
    )  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, phantom: tuple[Volume, Volume]):
    """The phantom as NIfTI, a batch of 2 variants x 2 tumors from it, and a copy of that batch's
    manifest, which pins its sources' sha256 (4 lines: variant 0 tumors 0, 1; variant 1 tumors
    0, 1)."""
    ct, seg = phantom
    root = tmp_path_factory.mktemp("replay_trust")
    inputs = root / "inputs"
    p = SimpleNamespace(
        root=root, inputs=inputs, ct=inputs / f"{CASE}_0000.nii.gz", seg=inputs / f"{CASE}.nii.gz"
    )
    save_volume(ct, p.ct)
    save_volume(seg, p.seg)
    p.batch = root / "batch"
    run = synthesize(p.ct, p.seg, p.batch)
    assert run.code == 0, run.err
    p.records = records_of(p.batch / "manifest.jsonl")
    assert [(r["variant"], r["tumor_index"]) for r in p.records] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    p.manifest = write_records(root / "shared" / "manifest.jsonl", p.records)
    return p


def edited(made: SimpleNamespace, folder: Path, edit: Callable[[list[dict]], object]) -> Path:
    """A copy of the pinned manifest in ``folder`` with ``edit`` applied to its records."""
    records = json.loads(json.dumps(made.records))
    result = edit(records)
    records = result if isinstance(result, list) else records
    return write_records(folder / "manifest.jsonl", records)


def refused(run: Run, *fragments: str) -> None:
    assert run.code == 2, (run.code, run.err)
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in run.err, (fragment, run.err)


def snapshot(made: SimpleNamespace) -> dict[str, str]:
    """Hashes of every file under the module's root (inputs, batch, shared manifest)."""
    return hashes(made.root)


# --- a clean replay ------------------------------------------------------------------------------


def test_replay_verifies_and_pins_what_it_replayed(made, tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    run = cli("replay", made.manifest, "--out", out, "--no-progress")
    assert run.code == 0, run.err
    assert "replayed 4 tumors" in run.out
    again = records_of(out / "manifest.jsonl")
    for old, new in zip(made.records, again, strict=True):
        for key in ("image_path", "label_path", "n_voxels", "volume_ml", "seed", "variant"):
            assert new[key] == old[key], key
        assert new["source_image_sha256"] == source_sha256(made.ct)
        assert new["source_label_sha256"] == source_sha256(made.seg)
        assert new["variant_tumors"] == 2
    for record in made.records[::2]:
        for key in ("image_path", "label_path"):
            assert np.array_equal(volume(out / record[key]), volume(made.batch / record[key]))
    info = json.loads((out / "replay.json").read_text())
    assert info["manifest_sha256"] == hashlib.sha256(made.manifest.read_bytes()).hexdigest()
    assert info["tumorsynth_version"]


# --- never write outside --out, never onto an input ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("image_path", "source_ct"),
        ("label_path", "source_label"),
        ("image_path", "../../escaped_0000.nii.gz"),
        ("label_path", "absolute"),
    ],
)
def test_record_paths_that_point_at_inputs_or_outside_out_are_refused(
    made, tmp_path: Path, key: str, target: str
) -> None:
    value = {
        "source_ct": str(made.ct),
        "source_label": str(made.seg),
        "absolute": str(tmp_path / "elsewhere" / "abdo.nii.gz"),
    }.get(target, target)

    def point(records: list[dict]) -> None:
        for record in records:
            record[key] = value

    manifest = edited(made, tmp_path / "shared", point)
    before, here = snapshot(made), hashes(tmp_path)
    out = tmp_path / "a" / "replayed"
    run = cli("replay", manifest, "--out", out, "--no-progress")
    refused(run, f"{manifest}:1: {key}", "never written to", repr(value))
    assert snapshot(made) == before  # the source CT and label stay byte-identical
    assert hashes(tmp_path) == here  # nothing written anywhere, inside or outside --out
    assert not (tmp_path / "a").exists() and not (tmp_path / "elsewhere").exists()


def test_an_output_folder_linked_elsewhere_is_refused(made, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "replayed"
    out.mkdir()
    (out / "imagesTr").symlink_to(elsewhere, target_is_directory=True)
    run = cli("replay", made.manifest, "--out", out, "--no-progress")
    refused(run, str(out / "imagesTr"), "outside --out")
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in out.iterdir()) == ["imagesTr"]


def test_a_manifest_that_is_not_text_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, str(manifest), "expected UTF-8 JSON lines")
    assert not (tmp_path / "replayed").exists()


@pytest.mark.parametrize("case_id", ["../evil", "a/b", "/abs", ".hidden"])
def test_case_id_that_is_not_one_safe_name_is_refused(made, tmp_path: Path, case_id: str) -> None:
    def rename(records: list[dict]) -> None:
        for record in records:
            record["case_id"] = case_id
            record["image_path"] = f"imagesTr/{case_id}_syn{record['variant']}_0000.nii.gz"
            record["label_path"] = f"labelsTr/{case_id}_syn{record['variant']}.nii.gz"

    manifest = edited(made, tmp_path / "shared", rename)
    before, here = snapshot(made), hashes(tmp_path)
    run = cli("replay", manifest, "--out", tmp_path / "out" / "replayed", "--no-progress")
    refused(run, f"{manifest}:1: case_id", "one path component")
    assert snapshot(made) == before and hashes(tmp_path) == here
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil_syn0_0000.nii.gz").exists()


def test_replay_into_the_manifests_own_folder_is_refused(made, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    manifest = folder / "tumors.jsonl"  # not named manifest.jsonl: the folder is what matters
    shutil.copy(made.manifest, manifest)
    run = cli("replay", manifest, "--out", folder, "--no-progress")
    refused(run, str(folder), "folder of the manifest")
    assert sorted(p.name for p in folder.iterdir()) == ["tumors.jsonl"]


def test_sources_where_a_resume_cleans_up_are_refused(made, tmp_path: Path) -> None:
    """A resume removes the unlisted files of imagesTr / labelsTr: no source may lie there."""
    out = tmp_path / "replayed"
    ct, seg = out / "imagesTr" / "old_syn0_0000.nii.gz", out / "labelsTr" / "old_syn0.nii.gz"
    ct.parent.mkdir(parents=True)
    seg.parent.mkdir()
    shutil.copy(made.ct, ct)
    shutil.copy(made.seg, seg)
    assert synthesize(ct, seg, tmp_path / "batch").code == 0
    before = hashes(out)
    run = cli("replay", tmp_path / "batch" / "manifest.jsonl", "--out", out, "--no-progress")
    refused(run, str(out), f"holds the input {ct} in imagesTr/")
    assert hashes(out) == before


# --- a manifest must hold every tumor once -------------------------------------------------------


def test_duplicate_tumor_records_are_refused_naming_both_lines(made, tmp_path: Path) -> None:
    manifest = edited(made, tmp_path / "shared", lambda rs: [*rs, dict(rs[1])])
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, f"{manifest}:5", "recorded twice", "lines 2 and 5")
    assert not (tmp_path / "replayed").exists()


def test_a_manifest_cut_mid_variant_is_refused_with_what_is_missing(made, tmp_path: Path) -> None:
    manifest = edited(made, tmp_path / "shared", lambda rs: rs[:3])  # variant 1 lost tumor 1
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, "abdo_syn1", "missing [1]", "cut mid-variant")
    assert not (tmp_path / "replayed").exists()


# --- every field checked before any output -------------------------------------------------------

NAN = float("nan")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seed", "abc", "expected an integer"),
        ("seed", True, "expected an integer"),
        ("tumor_index", 1.5, "expected an integer"),
        ("n_voxels", "many", "expected an integer"),
        ("volume_ml", float("inf"), "expected a finite number"),
        ("center_vox", [NAN, 10.0, 10.0], "expected 3 numbers, all finite"),
        ("radii_mm", [0.0, 6.0, 6.0], "expected semi-axes in (0, 250] mm"),
        ("radii_mm", [300.0, 6.0, 6.0], "expected semi-axes in (0, 250] mm"),
        ("organ", "brain", "expected one of"),
        ("organ", 7, "expected a string"),
        ("tumor_label", 1, "expected a tumor id"),
        ("tumor_label", 9, "expected a tumor id"),
        ("tumor_label", 4, "expected the liver tumor id 2"),  # a pancreas tumor in the liver
        ("generator", "magic", "expected a registered generator"),
        ("appearance", [1, 2], "expected a JSON object"),
        ("shape", "round", "expected a JSON object"),
        ("variant", -1, "expected an integer >= 0"),
        ("exophytic", "no", "expected true or false"),
    ],
)
def test_a_bad_field_is_refused_naming_line_and_field(
    made, tmp_path: Path, field: str, value: object, expected: str
) -> None:
    def set_first(records: list[dict]) -> None:
        records[0][field] = value

    manifest = edited(made, tmp_path / "shared", set_first)
    before = snapshot(made)
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, f"{manifest}:1: {field}", expected)
    assert not (tmp_path / "replayed").exists()
    assert snapshot(made) == before


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["shape"].pop("center_vox"), "shape: expected a complete shape spec"),
        (lambda r: r["shape"].update(radii_mm=[NAN, 5.0, 5.0]), "shape.radii_mm"),
        (lambda r: r["shape"].update(center_vox=[1.0, 2.0, 3.0]), "shape.center_vox"),
        (lambda r: r["shape"].update(rotation=[1.0, 0.0]), "shape: expected a rotation of 9"),
    ],
)
def test_a_shape_spec_that_disagrees_or_is_incomplete_is_refused(
    made, tmp_path: Path, edit: Callable[[dict], object], expected: str
) -> None:
    def edit_second(records: list[dict]) -> None:
        edit(records[1])

    manifest = edited(made, tmp_path / "shared", edit_second)
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, f"{manifest}:2: ", expected)
    assert not (tmp_path / "replayed").exists()


def test_a_centre_outside_the_volume_is_refused(made, tmp_path: Path) -> None:
    def move(records: list[dict]) -> None:  # variant 1: checked before variant 0 is written
        records[2]["center_vox"] = records[2]["shape"]["center_vox"] = [500.0, 40.0, 30.0]

    manifest = edited(made, tmp_path / "shared", move)
    before = snapshot(made)
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, f"{manifest}:3: center_vox", "inside the volume", str(SHAPE))
    assert not (tmp_path / "replayed").exists()
    assert snapshot(made) == before


@pytest.mark.parametrize("key", ["target_hu", "edge_width_mm"])
def test_an_incomplete_appearance_spec_names_its_record(made, tmp_path: Path, key: str) -> None:
    def drop(records: list[dict]) -> None:
        del records[1]["appearance"][key]

    manifest = edited(made, tmp_path / "shared", drop)
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, f"{manifest}:2: appearance", key)
    assert not (tmp_path / "replayed").exists()


# --- sources pinned by content -------------------------------------------------------------------


def test_a_different_ct_under_the_recorded_name_is_refused(made, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    ct, seg = sources / made.ct.name, sources / made.seg.name
    shutil.copy(made.ct, ct)
    shutil.copy(made.seg, seg)
    assert synthesize(ct, seg, tmp_path / "batch").code == 0
    records = records_of(tmp_path / "batch" / "manifest.jsonl")
    manifest = write_records(tmp_path / "shared" / "manifest.jsonl", records)
    expected = source_sha256(ct)
    other, _ = make_phantom(1, shape=SHAPE, spacing_mm=SPACING)
    save_volume(other, ct)  # same name, same grid, another patient
    found = source_sha256(ct)
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    refused(run, str(ct), expected[:12], found[:12], "not the file the tumors were made in")
    assert not (tmp_path / "replayed").exists()


def test_records_without_source_hashes_replay_with_a_warning(made, tmp_path: Path) -> None:
    def strip(records: list[dict]) -> None:
        for record in records:
            record.pop("source_image_sha256", None)
            record.pop("source_label_sha256", None)

    manifest = edited(made, tmp_path / "shared", strip)
    with pytest.warns(UserWarning, match=r"2 sources .* carry no sha256.*unverified"):
        run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    assert run.code == 0, run.err


# --- each replayed tumor measured against its record ---------------------------------------------


@pytest.mark.parametrize(
    ("field", "change"), [("n_voxels", lambda n: n + 1), ("volume_ml", lambda v: v + 0.01)]
)
def test_a_tumor_that_measures_other_than_its_record_is_refused(
    made, tmp_path: Path, field: str, change: Callable[[float], float]
) -> None:
    def alter_third(records: list[dict]) -> None:
        records[2][field] = change(records[2][field])  # variant 1, tumor 0

    manifest = edited(made, tmp_path / "shared", alter_third)
    out = tmp_path / "replayed"
    run = cli("replay", manifest, "--out", out, "--no-progress")
    refused(run, f"{manifest}:3: {field}", "the record")
    # variant 0 was finished before: it stays, complete and listed; variant 1 left no file
    assert [(r["variant"], r["tumor_index"]) for r in records_of(out / "manifest.jsonl")] == [
        (0, 0),
        (0, 1),
    ]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["abdo_syn0_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == ["abdo_syn0.nii.gz"]


# --- resumable -----------------------------------------------------------------------------------


def test_a_replay_cut_short_resumes_with_the_same_command(made, tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    args = ("replay", made.manifest, "--out", out, "--no-progress")
    assert cli(*args).code == 0
    finished = hashes(out)
    # as a kill mid-way leaves it: variant 1 half recorded, its files missing, a temporary file
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    (out / "manifest.jsonl").write_text("".join(lines[:3]) + lines[3][:40])
    (out / "imagesTr" / "abdo_syn1_0000.nii.gz").unlink()
    (out / "labelsTr" / "abdo_syn1.nii.gz").unlink()
    (out / "dataset.json").unlink()
    stray = out / "imagesTr" / ".abdo_syn1_0000.x1y2z3.part.nii.gz"
    stray.write_bytes(b"half a file")
    run = cli(*args)
    assert run.code == 0, run.err
    assert "replayed 2 tumors" in run.out and "1 variants already done" in run.out
    assert not stray.exists()
    assert hashes(out) == finished  # same files, no duplicate record


def test_a_finished_replay_rerun_changes_nothing(made, tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    args = ("replay", made.manifest, "--out", out, "--no-progress")
    assert cli(*args).code == 0
    finished = hashes(out)
    run = cli(*args)
    assert run.code == 0, run.err
    assert "replayed 0 tumors" in run.out and "2 variants already done" in run.out
    assert hashes(out) == finished


def test_another_manifest_into_a_replay_folder_is_refused(made, tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    assert cli("replay", made.manifest, "--out", out, "--no-progress").code == 0
    finished = hashes(out)
    other = edited(made, tmp_path / "other", lambda rs: rs[:2])  # a valid, smaller manifest
    run = cli("replay", other, "--out", out, "--no-progress")
    refused(run, str(out / "replay.json"), "another manifest", "would mix")
    assert hashes(out) == finished


def test_a_second_replay_into_a_folder_in_use_is_refused(made, tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    out.mkdir()
    holder = subprocess.Popen(  # another process holding the folder, as a running replay does
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tumorsynth.io.run_lock import run_lock\n"
            "with run_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        run = cli("replay", made.manifest, "--out", out, "--no-progress")
    finally:
        holder.kill()
        holder.communicate()
    refused(run, str(out), "another tumorsynth run is writing into this folder")
    assert not (out / "manifest.jsonl").exists() and not (out / "replay.json").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_ircad_manifest_aimed_at_its_ct_is_refused_and_the_intact_one_replays(
    tmp_path: Path,
) -> None:
    """IRCAD 1.7 (512 x 512 slices, int16), copied first: a hostile manifest is tried on it."""
    data = require_data("ircadb01_p07")
    ct, seg = tmp_path / "src" / "ircad07_0000.nii.gz", tmp_path / "src" / "ircad07.nii.gz"
    ct.parent.mkdir()
    shutil.copy(data / "ircadb01_p07_ct.nii.gz", ct)
    shutil.copy(data / "ircadb01_p07_label.nii.gz", seg)
    label_map = tmp_path / "ircad.json"
    label_map.write_text(json.dumps({"liver": 1, "kidney": 5}))
    batch = tmp_path / "batch"
    run = cli(
        "synthesize", "--image", ct, "--label", seg, "--label-map", label_map, "--organ",
        "liver", "--count", 1, "--size", "small", "--seed", 1, "--out", batch, "--no-progress",
    )  # fmt: skip
    assert run.code == 0, run.err
    records = records_of(batch / "manifest.jsonl")
    before = source_sha256(ct)
    hostile = write_records(
        tmp_path / "hostile" / "manifest.jsonl", [{**r, "image_path": str(ct)} for r in records]
    )
    run = cli("replay", hostile, "--out", tmp_path / "hostile_out", "--no-progress")
    refused(run, f"{hostile}:1: image_path", repr(str(ct)))
    assert source_sha256(ct) == before and not (tmp_path / "hostile_out").exists()
    intact = write_records(tmp_path / "shared" / "manifest.jsonl", records)
    run = cli("replay", intact, "--out", tmp_path / "replayed", "--no-progress")
    assert run.code == 0, run.err
    for key in ("image_path", "label_path"):
        path = records[0][key]
        assert np.array_equal(volume(tmp_path / "replayed" / path), volume(batch / path)), path
    assert source_sha256(ct) == before
