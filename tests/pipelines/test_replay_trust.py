"""replay_manifest checks what it replays: record checks, learned generators rebuilt from their
records' checkpoint, failures that leave a consistent folder and a rerun that finishes it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import batch_settings
from file_checks import file_hashes as tree_hashes

import tumorsynth.generators as generators_module
import tumorsynth.pipelines.replay as replay_module
from tumorsynth.errors import InputError, OutputError
from tumorsynth.generators import HeuristicGenerator
from tumorsynth.io.datasets import CaseRef
from tumorsynth.io.nifti import save_volume
from tumorsynth.io.records import (
    MANIFEST_NAME,
    TumorRecord,
    check_record,
    read_manifest,
)
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.batch import run_batch
from tumorsynth.pipelines.replay import REPLAY_INFO, plan_replay, replay_manifest
from tumorsynth.pipelines.synthesize import TumorRequest

SHAPE, SPACING = (96, 80, 48), (3.5, 3.5, 4.0)


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> CaseRef:
    folder = tmp_path_factory.mktemp("replay_inputs")
    ct, seg = make_phantom(0, shape=SHAPE, spacing_mm=SPACING)
    save_volume(ct, folder / "ph_0000.nii.gz")
    save_volume(seg, folder / "ph.nii.gz")
    return CaseRef("ph", folder / "ph_0000.nii.gz", folder / "ph.nii.gz")


def batch(case: CaseRef, out: Path, **changes: Any) -> Path:
    """2 variants x 2 small liver tumors of ``case`` (seed 5); ``changes`` override."""
    options = {"requests": (TumorRequest("liver", 2, "small"),), "seed": 5, "per_case": 2}
    run_batch([case], out, batch_settings(**{**options, **changes}), progress=False)
    return out / MANIFEST_NAME


@pytest.fixture(scope="module")
def manifest(case: CaseRef, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heuristic batch: 2 variants x 2 liver tumors (read only)."""
    return batch(case, tmp_path_factory.mktemp("replay_batch") / "out")


@pytest.fixture(scope="module")
def reference(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted replay of ``manifest`` (read only)."""
    out = tmp_path_factory.mktemp("replay_reference") / "out"
    replay_manifest(manifest, out, progress=False)
    return out


# --- records -------------------------------------------------------------------------------------


def test_check_record_accepts_what_a_batch_wrote(manifest: Path) -> None:
    for number, record in enumerate(read_manifest(manifest), start=1):
        assert check_record(record, f"m:{number}") is record


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"image_path": "/etc/passwd"}, "image_path"),
        ({"label_path": "labelsTr/ph_syn1.nii.gz"}, "label_path"),  # another variant's file
        ({"image_path": None}, "image_path"),
        ({"source_label": None}, "source_label"),
        ({"case_id": ".."}, "case_id"),
        ({"tumor_label": 5}, "tumor_label"),  # an organ id, not a tumor id
        ({"n_voxels": 0}, "n_voxels"),
        ({"variant_tumors": 0}, "variant_tumors"),
    ],
)
def test_check_record_names_the_field(manifest: Path, changes: dict, field: str) -> None:
    record = replace(read_manifest(manifest)[0], **changes)
    with pytest.raises(InputError, match=f"^m:7: {field}: expected"):
        check_record(record, "m:7")


def test_from_dict_refuses_a_bool_where_an_int_belongs(manifest: Path) -> None:
    data = {**read_manifest(manifest)[0].to_dict(), "tumor_label": True}
    with pytest.raises(InputError, match="m:2: tumor_label: expected an integer, found true"):
        TumorRecord.from_dict(data, where="m:2")


# --- the plan ------------------------------------------------------------------------------------


def test_plan_groups_variants_in_order_and_derives_their_files(manifest: Path) -> None:
    variants = plan_replay(manifest)
    assert [v.name for v in variants] == ["ph_syn0", "ph_syn1"]
    assert variants[1].files == ("imagesTr/ph_syn1_0000.nii.gz", "labelsTr/ph_syn1.nii.gz")
    assert [r.tumor_index for r in variants[0].records] == [0, 1]
    assert variants[0].wheres == [f"{manifest}:1", f"{manifest}:2"]


def test_tumors_of_one_variant_must_share_their_sources(manifest: Path, tmp_path: Path) -> None:
    records = [r.to_dict() for r in read_manifest(manifest)]
    records[1]["source_image"] = records[1]["source_image"] + ".other"
    edited = write_records(tmp_path / "m.jsonl", records)
    with pytest.raises(InputError, match=r"m.jsonl:2: source_image: expected the value of ph_syn0"):
        plan_replay(edited)


def test_an_older_manifest_without_tumor_counts_still_needs_indices_0_to_n(
    manifest: Path, tmp_path: Path
) -> None:
    records = [{**r.to_dict(), "variant_tumors": None} for r in read_manifest(manifest)]
    assert len(plan_replay(write_records(tmp_path / "ok.jsonl", records))) == 2
    gap = write_records(tmp_path / "gap.jsonl", [records[0], records[1], records[3]])
    with pytest.raises(InputError, match=r"ph_syn1: expected tumors 0\.\.0 .* found \[1\]"):
        plan_replay(gap)


def test_a_hostile_tumor_count_is_refused_at_once(manifest: Path, tmp_path: Path) -> None:
    records = [{**r.to_dict(), "variant_tumors": 10**12} for r in read_manifest(manifest)]
    with pytest.raises(
        InputError, match=r"ph_syn0: expected tumors 0\.\.999999999999 .* missing \[2,"
    ):
        plan_replay(write_records(tmp_path / "m.jsonl", records))


def test_an_empty_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text("")
    with pytest.raises(InputError, match="holds no tumor records"):
        plan_replay(tmp_path / "m.jsonl")


# --- failures: nothing partial, a consistent folder, a rerun that finishes -----------------------


def failing_save(monkeypatch: pytest.MonkeyPatch, on_call: int) -> list[Path]:
    """Make the replay's ``on_call``-th file write fail as a full disk does."""
    real, calls = replay_module.save_volume, []

    def save(volume: Any, path: Path, **kwargs: Any) -> Any:
        calls.append(Path(path))
        if len(calls) == on_call:
            raise OutputError(str(path), "disk full while writing; nothing partial was kept")
        return real(volume, path, **kwargs)

    monkeypatch.setattr(replay_module, "save_volume", save)
    return calls


def test_a_first_replay_that_fails_leaves_nothing(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_save(monkeypatch, on_call=2)  # the first variant's label
    with pytest.raises(OutputError, match="disk full"):
        replay_manifest(manifest, tmp_path / "a" / "out", progress=False)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("on_call", [3, 4])  # the second variant's image, then its label
def test_a_replay_that_fails_later_is_consistent_and_the_same_call_finishes_it(
    manifest: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_call: int
) -> None:
    out = tmp_path / "out"
    failing_save(monkeypatch, on_call)
    with pytest.raises(OutputError):
        replay_manifest(manifest, out, progress=False)
    assert [(r.variant, r.tumor_index) for r in read_manifest(out / MANIFEST_NAME)] == [
        (0, 0),
        (0, 1),
    ]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["ph_syn0_0000.nii.gz"]
    assert (out / REPLAY_INFO).is_file()
    monkeypatch.undo()
    result = replay_manifest(manifest, out, progress=False)
    assert (result.variants_done, result.variants_skipped, len(result.records)) == (1, 1, 2)
    assert tree_hashes(out) == tree_hashes(reference)


# --- learned generators: rebuilt from the options their records carry ----------------------------


class StubLearned(HeuristicGenerator):
    """A "learned" generator for the test: heuristic voxels, rebuilt from a checkpoint option."""

    name = "stub_learned"
    built: list[dict[str, Any]] = []

    def __init__(self, checkpoint: str | None = None, device: str = "auto") -> None:
        self.checkpoint = checkpoint
        StubLearned.built.append({"checkpoint": checkpoint, "device": device})

    @property
    def options(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint}


def test_checkpoint_and_device_reach_any_learned_generator(
    case: CaseRef, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(generators_module._FACTORIES, "stub_learned", StubLearned)
    monkeypatch.setattr(StubLearned, "built", [])
    made = batch(
        case,
        tmp_path / "batch",
        generator="stub_learned",
        generator_options={"checkpoint": "/models/a"},
        per_case=1,
    )
    assert {r.generator_options["checkpoint"] for r in read_manifest(made)} == {"/models/a"}
    StubLearned.built.clear()
    replay_manifest(made, tmp_path / "default", progress=False, device="cpu")
    assert StubLearned.built == [{"checkpoint": "/models/a", "device": "cpu"}]
    StubLearned.built.clear()
    replay_manifest(made, tmp_path / "moved", progress=False, checkpoint="/models/b")
    assert StubLearned.built == [{"checkpoint": "/models/b", "device": "auto"}]
    assert tree_hashes(tmp_path / "default" / "imagesTr") == tree_hashes(
        tmp_path / "moved" / "imagesTr"
    )


def test_a_manifest_written_before_records_kept_generator_options_replays(
    manifest: Path, reference: Path, tmp_path: Path
) -> None:
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all(line.pop("generator_options") == {} for line in lines)
    old = write_records(tmp_path / "old" / MANIFEST_NAME, lines)
    assert all(r.generator_options == {} for r in read_manifest(old))
    replay_manifest(old, tmp_path / "out", progress=False)
    assert tree_hashes(tmp_path / "out" / "imagesTr") == tree_hashes(reference / "imagesTr")


def test_a_checkpoint_for_a_manifest_without_learned_generators_is_refused(
    manifest: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="checkpoint: expected a manifest of a generator that"):
        replay_manifest(manifest, tmp_path / "out", progress=False, checkpoint="/models/a")
    assert not (tmp_path / "out").exists()


def test_a_generator_of_another_version_is_refused_before_any_output(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HeuristicGenerator, "version", "9.9")
    with pytest.raises(InputError, match=r"m.*:1: generator_version: tumor was made by heuristic"):
        replay_manifest(manifest, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
