"""``tumorsynth turing create`` on the shared CTs: real items from IRCAD 1.17's two tumors,
synthetic items made by ``tumorsynth synthesize`` in IRCAD 1.7. The key matches the items, and
no item file, name or study.json tells real from synthetic, although the two scans differ in
spacing (0.743 vs 0.782 mm in-plane)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from turing_helpers import write_config

from tumorsynth.cli.main import main
from tumorsynth.io import load_image, load_label
from tumorsynth.turing.layout import ITEM_ID, read_key, read_study

pytestmark = pytest.mark.realdata


def test_ircad_study_key_matches_items_and_nothing_public_tells_them_apart(
    ircad_study_sources, tmp_path, capsys
):
    out = tmp_path / "study"
    config = write_config(tmp_path, ircad_study_sources)
    assert (
        main(["turing", "create", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    )
    printed = capsys.readouterr().out
    assert re.search(r"real liver\s+2\b", printed) and re.search(r"synthetic liver\s+2\b", printed)
    info, key = read_study(out), read_key(out)
    assert sorted(key) == sorted(info.item_ids) and len(key) == 4
    p17 = ircad_study_sources["p17"]
    ct17, label17 = (
        load_image(p17 / "ircadb01_p17_ct.nii.gz"),
        load_label(p17 / "ircadb01_p17_label.nii.gz"),
    )
    middle = tuple(n // 2 for n in info.shape)
    volumes = []
    for item_id in info.item_ids:
        entry = key[item_id]
        item = np.fromfile(out / "items" / f"{item_id}.raw", "<i2")
        assert item.size * 2 == info.item_bytes
        item = item.reshape(info.shape)
        centre = tuple(entry.center_vox)
        if entry.truth == "real":  # from 1.17, centred inside one of its two tumors
            assert Path(entry.source_image) == p17 / "ircadb01_p17_ct.nii.gz"
            assert label17.array[centre] == 2 and entry.generator == ""
            assert item[middle] == ct17.array[centre]
            volumes.append(entry.volume_ml)
        else:  # made in 1.7 by synthesize, centred inside its tumor
            assert Path(entry.source_image).is_relative_to(ircad_study_sources["root"] / "synth")
            assert load_label(entry.source_label).array[centre] == 2
            assert entry.generator == "heuristic"
            assert item[middle] == load_image(entry.source_image).array[centre]
        assert entry.organ == "liver" and entry.size_class == "large"
    assert sorted(volumes) == pytest.approx([78.6, 85.6], abs=0.5)
    # one grid for all: the coarser in-plane spacing of 1.7, not 1.17's 0.743 mm
    assert info.spacing_mm == pytest.approx((1.6, 0.782, 0.782), abs=1e-3)
    # no file name, size or header tells an item's class
    assert {p.stat().st_size for p in (out / "items").iterdir()} == {info.item_bytes}
    assert all(ITEM_ID.fullmatch(p.stem) and p.suffix == ".raw" for p in (out / "items").iterdir())
    public = json.loads((out / "study.json").read_text(encoding="utf-8"))
    assert all(ITEM_ID.fullmatch(i) for i in public.pop("item_ids"))  # random hex, nothing else
    assert re.fullmatch(r"[0-9a-f]{32}", public.pop("study_id"))
    public.pop("presets")  # the same for every item; one is called "liver"
    text = json.dumps(public).lower()
    for word in ("real", "synthetic", "ircad", "p17", "p07", "liver", "heuristic", "manifest"):
        assert word not in text, word
    assert sorted(p.name for p in out.iterdir()) == ["items", "key", "study.json"]


def test_native_spacing_is_refused_for_117_and_17(ircad_study_sources, tmp_path, capsys):
    out = tmp_path / "study"
    config = write_config(tmp_path, ircad_study_sources, spacing_mm="native")
    assert (
        main(["turing", "create", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    )
    err = capsys.readouterr().err
    assert (
        str(config) in err and "2 different spacings" in err and "0.743" in err and "0.782" in err
    )
    assert not out.exists()
