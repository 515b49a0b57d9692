"""Label-map presets and user mappings: which ids are which organ, and clear errors otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import OUTPUT_LABELS, PRESETS, ids_present, resolve_label_map


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves_and_round_trips(name: str) -> None:
    label_map = resolve_label_map(name)
    assert label_map is PRESETS[name]
    assert resolve_label_map(name.upper()) is label_map
    assert label_map.organs or label_map.generic_organ
    assert resolve_label_map(label_map.to_json()) == label_map
    assert resolve_label_map(json.loads(json.dumps(label_map.to_json()))) == label_map


def test_totalsegmentator_ids() -> None:
    ts = resolve_label_map("totalsegmentator")
    assert ts.organ_ids("kidney") == (2, 3)
    assert ts.organ_ids("kidney_right") == (2,)
    assert ts.organ_ids("kidney_left") == (3,)
    assert ts.organ_ids("liver") == (5,)
    assert ts.organ_ids("pancreas") == (7,)
    assert ts.organ_ids("spleen") == (1,)
    assert ts.tumor_ids("liver") == ()


@pytest.mark.parametrize("organ", ["liver", "pancreas", "kidney", "spleen"])
def test_msd_means_the_dataset_organ_whatever_it_is(organ: str) -> None:
    msd = resolve_label_map("msd")
    assert msd.organ_ids(organ) == (1,)
    assert msd.tumor_ids(organ) == (2,)


def test_lits_and_kits_presets() -> None:
    assert resolve_label_map("lits").organ_ids("liver") == (1,)
    assert resolve_label_map("lits").tumor_ids("liver") == (2,)
    assert resolve_label_map("kits").organ_ids("kidney") == (1,)
    assert resolve_label_map("kits").tumor_ids("kidney") == (2, 3)  # tumor and cyst


def test_output_convention() -> None:
    expected = {
        "liver": 1,
        "liver_tumor": 2,
        "pancreas": 3,
        "pancreas_tumor": 4,
        "kidney": 5,
        "kidney_tumor": 6,
        "colon": 7,
        "colon_tumor": 8,
        "esophagus": 9,
        "esophagus_tumor": 10,
        "uterus": 11,
        "uterus_tumor": 12,
    }
    assert {name: OUTPUT_LABELS.id_of(name) for name in expected} == expected
    assert OUTPUT_LABELS.known_ids() == set(range(1, 13))


def test_user_json_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "my_map.json", {"liver": 1, "kidney": [2, 3], "liver_tumor": 9})
    label_map = resolve_label_map(path)
    assert label_map.organ_ids("liver") == (1,)
    assert label_map.organ_ids("kidney") == (2, 3)
    assert label_map.tumor_ids("liver") == (9,)
    assert label_map.tumor_ids("kidney") == ()
    assert label_map.name == "my_map.json"
    assert resolve_label_map(str(path)) == label_map


def test_user_map_to_json_round_trip(tmp_path: Path) -> None:
    data = {"liver": 1, "kidney": [2, 3], "liver_tumor": 9, "organ": [4], "tumor": [8]}
    label_map = resolve_label_map(write_json(tmp_path / "map.json", data))
    again = resolve_label_map(json.loads(json.dumps(label_map.to_json())))
    assert (again.organs, again.tumors) == (label_map.organs, label_map.tumors)
    assert (again.generic_organ, again.generic_tumor) == ((4,), (8,))


def test_user_map_named_like_a_preset_is_not_serialized_as_the_preset(tmp_path: Path) -> None:
    """A file called ``lits`` (no suffix) holding other ids must not turn into the lits preset."""
    path = write_json(tmp_path / "lits", {"liver": 7})
    label_map = resolve_label_map(path)
    assert label_map.organ_ids("liver") == (7,)
    assert resolve_label_map(label_map.to_json()).organ_ids("liver") == (7,)


def test_mapping_is_accepted_directly() -> None:
    label_map = resolve_label_map({"pancreas": 7})
    assert label_map.organ_ids("pancreas") == (7,)
    assert resolve_label_map(label_map) is label_map


@pytest.mark.parametrize(
    "text, found",
    [
        ('{"liver": 1', "unreadable JSON"),
        ("", "unreadable JSON"),
        ("[1, 2]", "found list"),
        ("5", "found int"),
        ("{}", "found none"),
        ('{"liver_tumor": 2}', "found none"),
    ],
)
def test_bad_json_file_is_named_with_what_was_found(tmp_path: Path, text: str, found: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(text)
    with pytest.raises(InputError, match=found) as info:
        resolve_label_map(path)
    assert str(info.value).startswith(str(path)) or "map.json" in str(info.value)
    assert "expected" in str(info.value)


@pytest.mark.parametrize("value", [0, -3, True, False, 1.5, "1", [], [1, 0], [2, True], None])
def test_ids_must_be_positive_integers(tmp_path: Path, value: object) -> None:
    path = write_json(tmp_path / "map.json", {"spleen": 1, "liver": value})
    with pytest.raises(InputError, match="positive integer") as info:
        resolve_label_map(path)
    text = str(info.value)
    assert "map.json" in text
    assert "'liver'" in text
    assert repr(value) in text


def test_missing_json_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "gone.json"
    with pytest.raises(InputError, match="does not exist") as info:
        resolve_label_map(path)
    assert str(path) in str(info.value)


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(InputError) as info:
        resolve_label_map("totalseg")
    text = str(info.value)
    assert "'totalseg'" in text
    assert all(name in text for name in PRESETS)


def test_unknown_organ_names_the_map_and_what_it_knows(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        resolve_label_map("lits").organ_ids("pancreas")
    assert "'lits'" in str(info.value) and "'pancreas'" in str(info.value)
    assert "['liver']" in str(info.value)
    path = write_json(tmp_path / "mine.json", {"spleen": 1})
    with pytest.raises(InputError) as info:
        resolve_label_map(path).organ_ids("liver")
    assert "mine.json" in str(info.value) and "'liver'" in str(info.value)
    assert "spleen" in str(info.value)


def test_id_of_unknown_name_is_refused() -> None:
    with pytest.raises(InputError, match="spleen_tumor"):
        OUTPUT_LABELS.id_of("spleen_tumor")


def test_ids_present() -> None:
    label = np.zeros((4, 4, 4), np.uint8)
    label[1, 1, 1] = 5
    assert ids_present(label, (2, 5))
    assert not ids_present(label, (2, 3))
    assert not ids_present(label, ())
    assert ids_present(label.astype(np.uint16), (5,))
