"""Tumor records and JSON-lines manifests: exact round trips, crash-safe appends, clear errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tumorsynth.errors import InputError, OutputError
from tumorsynth.io.atomic import append_line_durably
from tumorsynth.io.records import TumorRecord, append_records, read_manifest


def make_record(index: int = 0, **changes: Any) -> TumorRecord:
    """A record with awkward floats (1/3, 0.1+0.2) so that any rounding on the way shows."""
    record = TumorRecord(
        case_id="liver_3",
        tumor_index=index,
        organ="liver",
        size_class="small",
        generator="heuristic",
        generator_version="1.0",
        seed=2**62 + 12345,
        tumor_label=2,
        center_vox=(10.5, 1 / 3, 30.25),
        center_mm=(-120.125, 0.1 + 0.2, 47.0),
        radii_mm=(8.0, 7.5, 9.125),
        diameter_mm=16.1,
        volume_ml=2.2,
        n_voxels=140,
        early_stage=True,
        tumor_mean_hu=70.25,
        parenchyma_mean_hu=105.5,
        contrast_hu=-35.25,
        exophytic=False,
        shape={
            "radii_mm": [8.0, 7.5, 9.125],
            "rotation": [1.0, 0.0, 0.0] * 3,
            "satellites": [{"offset_mm": [1.0, 2.0, 3.0], "radius_mm": 2.5}],
        },
        appearance={"kind": "solid", "target_hu": 70.0 + 1e-9, "dense_spots": []},
        attempts=2,
        filter_verdict={"kept": True, "detected_fraction": 0.8125},
        image_path="imagesTr/liver_3_syn1_0000.nii.gz",
        label_path="labelsTr/liver_3_syn1.nii.gz",
        source_image="/data/liver_3_0000.nii.gz",
        source_label="/data/liver_3.nii.gz",
        label_map={"preset": "totalsegmentator"},
        variant=1,
        tumorsynth_version="0.1.0",
        extra={"note": "é ünïcode"},
    )
    return replace(record, **changes) if changes else record


def write_lines(path: Path, lines: list[str], *, final_newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")
    return path


# --- records -------------------------------------------------------------------------------------


def test_record_round_trips_exactly_through_json() -> None:
    record = make_record()
    line = record.to_json()
    assert "\n" not in line
    again = TumorRecord.from_dict(json.loads(line))
    assert again == record
    assert again.center_vox[1] == 1 / 3 and again.center_mm[1] == 0.1 + 0.2
    assert again.seed == 2**62 + 12345
    assert again.to_json() == line


def test_record_to_dict_is_plain_json() -> None:
    data = make_record().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["center_mm"] == [-120.125, 0.1 + 0.2, 47.0]


def test_unknown_fields_are_kept_in_extra() -> None:
    data = {**make_record().to_dict(), "written_by_a_newer_version": 7}
    again = TumorRecord.from_dict(data)
    assert again.extra == {"note": "é ünïcode", "written_by_a_newer_version": 7}


def test_missing_required_fields_are_listed() -> None:
    data = make_record().to_dict()
    del data["organ"], data["seed"], data["image_path"]  # image_path is optional
    with pytest.raises(InputError) as info:
        TumorRecord.from_dict(data, where="m.jsonl:4")
    text = str(info.value)
    assert text.startswith("m.jsonl:4")
    assert "'organ'" in text and "'seed'" in text
    assert "image_path" not in text


@pytest.mark.parametrize("data", [None, 42, "text", [1, 2]])
def test_a_non_object_is_refused(data: object) -> None:
    with pytest.raises(InputError) as info:
        TumorRecord.from_dict(data, where="m.jsonl:2")  # type: ignore[arg-type]
    assert str(info.value).startswith("m.jsonl:2")


@pytest.mark.parametrize("value", [5, [1.0, 2.0], None])
def test_a_malformed_centre_is_refused(value: object) -> None:
    data = {**make_record().to_dict(), "center_mm": value}
    with pytest.raises(InputError, match="center_mm: expected 3 numbers"):
        TumorRecord.from_dict(data, where="m.jsonl:1")


# --- manifests -----------------------------------------------------------------------------------


def test_append_then_read_gives_the_same_records(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    records = [make_record(i) for i in range(3)]
    append_records(manifest, records[:2])
    append_records(manifest, records[2:])
    assert read_manifest(manifest) == records
    assert manifest.read_text(encoding="utf-8").count("\n") == 3


def test_last_line_cut_off_by_a_crash_is_ignored(tmp_path: Path) -> None:
    good = [make_record(i) for i in range(2)]
    fragment = make_record(2).to_json()[:57]
    manifest = write_lines(
        tmp_path / "manifest.jsonl", [r.to_json() for r in good] + [fragment], final_newline=False
    )
    assert read_manifest(manifest) == good


def test_a_complete_last_line_without_newline_is_also_ignored(tmp_path: Path) -> None:
    """Without its newline a line was not fsynced as a whole; resume redoes it."""
    lines = [make_record(i).to_json() for i in range(2)]
    manifest = write_lines(tmp_path / "manifest.jsonl", lines, final_newline=False)
    assert read_manifest(manifest) == [make_record(0)]


def test_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    lines = [make_record(0).to_json(), '{"case_id": "liver_3", garbage', make_record(1).to_json()]
    manifest = write_lines(tmp_path / "manifest.jsonl", lines)
    with pytest.raises(InputError, match="JSON") as info:
        read_manifest(manifest)
    assert str(info.value).startswith(f"{manifest}:2:")


def test_record_lacking_fields_names_file_line_and_fields(tmp_path: Path) -> None:
    partial = make_record(1).to_dict()
    del partial["volume_ml"]
    manifest = write_lines(
        tmp_path / "manifest.jsonl", ["", make_record(0).to_json(), json.dumps(partial)]
    )
    with pytest.raises(InputError, match="'volume_ml'") as info:
        read_manifest(manifest)
    assert str(info.value).startswith(f"{manifest}:3:")


def test_non_object_line_names_file_and_line(tmp_path: Path) -> None:
    manifest = write_lines(tmp_path / "manifest.jsonl", [make_record(0).to_json(), "null"])
    with pytest.raises(InputError, match="JSON object") as info:
        read_manifest(manifest)
    assert str(info.value).startswith(f"{manifest}:2:")


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    manifest = write_lines(tmp_path / "manifest.jsonl", ["", make_record(0).to_json(), "  "])
    assert read_manifest(manifest) == [make_record(0)]


def test_missing_manifest_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as info:
        read_manifest(tmp_path / "manifest.jsonl")
    assert str(tmp_path / "manifest.jsonl") in str(info.value)


# --- durable appends ------------------------------------------------------------------------------


def test_append_repairs_a_fragment_before_appending(tmp_path: Path) -> None:
    good = make_record(0)
    manifest = write_lines(
        tmp_path / "manifest.jsonl",
        [good.to_json(), make_record(1).to_json()[:40]],
        final_newline=False,
    )
    append_line_durably(manifest, make_record(2).to_json())
    expected = good.to_json() + "\n" + make_record(2).to_json() + "\n"
    assert manifest.read_text(encoding="utf-8") == expected
    assert read_manifest(manifest) == [good, make_record(2)]


def test_append_repairs_a_fragment_longer_than_its_read_window(tmp_path: Path) -> None:
    good = make_record(0)
    manifest = write_lines(
        tmp_path / "manifest.jsonl", [good.to_json(), "{" + "x" * 200_000], final_newline=False
    )
    append_line_durably(manifest, make_record(1).to_json())
    assert read_manifest(manifest) == [good, make_record(1)]


def test_append_repairs_a_file_that_is_only_a_fragment(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text('{"case_id": "li')
    append_line_durably(manifest, make_record(0).to_json())
    assert read_manifest(manifest) == [make_record(0)]


def test_append_creates_the_file(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    append_line_durably(manifest, "{}")
    assert manifest.read_text() == "{}\n"


def test_append_refuses_a_line_holding_a_newline(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    with pytest.raises(ValueError, match="newline"):
        append_line_durably(manifest, "{}\n{}")
    assert not manifest.exists()


def test_append_to_an_unwritable_place_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(OutputError) as info:
        append_line_durably(blocker / "manifest.jsonl", "{}")
    assert str(blocker / "manifest.jsonl") in str(info.value)
