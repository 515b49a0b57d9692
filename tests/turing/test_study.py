"""``tumorsynth turing create`` on phantoms with hand-drawn tumors: the key matches the items, the
fraction, sizes and organs asked for are honoured, the same seed gives the same bytes, nothing
in study.json, the file names or sizes tells items apart, and bad input leaves no folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import edt
import numpy as np
import pytest
import yaml

from tumorsynth.cli.main import main
from tumorsynth.errors import InputError
from tumorsynth.evaluation.lesions import connected_components
from tumorsynth.io import load_image, load_label
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.turing.layout import ITEM_ID, StudyInfo, read_key, read_study
from tumorsynth.turing.study import create_study
from tumorsynth.turing.study_grid import LpsGrid, crop_item
from tumorsynth.turing.study_items import size_class_of
from tumorsynth.turing.study_settings import load_study

#: Equivalent diameters (mm) of the tumors drawn into every phantom: one tiny, small, medium.
DIAMETERS_MM = (9.0, 16.0, 30.0)


def tumor_phantom(seed: int, spacing_mm, shape, *, lps: bool) -> tuple[Volume, Volume]:
    """A phantom with one ball-shaped liver tumor of each of :data:`DIAMETERS_MM` (label 2,
    50 HU darker than the liver), deep in the liver and apart; ``lps``: stored flipped along
    the first two axes with an LPS affine (the same anatomy, another voxel order)."""
    ct, seg = make_phantom(seed, shape=shape, spacing_mm=spacing_mm)
    image, label = ct.array.copy(), seg.array.copy()
    depth = edt.edt(label == 1, anisotropy=spacing_mm, black_border=True)
    grid = np.stack(
        np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing_mm)), indexing="ij"), -1
    )
    for diameter in sorted(DIAMETERS_MM, reverse=True):
        centre = np.unravel_index(int(np.argmax(depth)), depth.shape)
        assert depth[centre] > diameter / 2 + 3, "the phantom liver is too small for the tumor"
        distance = np.linalg.norm(grid - grid[centre], axis=-1)
        ball = distance <= diameter / 2
        label[ball] = 2
        image[ball] -= 50
        depth[distance <= diameter / 2 + 25] = 0  # the next tumor sits apart
    affine = ct.affine.copy()
    if lps:
        image, label = image[::-1, ::-1].copy(), label[::-1, ::-1].copy()
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = [shape[0] - 1, shape[1] - 1]
        affine = affine @ flip
    return Volume(image, affine, ct.header), Volume(label, affine, seg.header)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Real: an nnU-Net folder of 3 RAS phantoms at 3 mm. Synthetic: a list file of 3 LPS
    phantoms at 2.5 x 2.5 x 3.5 mm. Each phantom holds a tiny, a small and a medium tumor."""
    root = tmp_path_factory.mktemp("turing_sources")
    for i in range(3):
        ct, seg = tumor_phantom(i, (3.0, 3.0, 3.0), (96, 80, 48), lps=False)
        save_volume(ct, root / "real_ds" / "imagesTr" / f"r{i}_0000.nii.gz")
        save_volume(seg, root / "real_ds" / "labelsTr" / f"r{i}.nii.gz")
    lines = []
    for i in range(3, 6):
        ct, seg = tumor_phantom(i, (2.5, 2.5, 3.5), (112, 96, 40), lps=True)
        save_volume(ct, root / "made" / f"s{i}_ct.nii.gz")
        save_volume(seg, root / "made" / f"s{i}_seg.nii.gz")
        lines.append(f"s{i}_ct.nii.gz s{i}_seg.nii.gz")
    (root / "made" / "synthetic.txt").write_text("\n".join(lines) + "\n")
    return {"root": root, "real": root / "real_ds", "synthetic": root / "made" / "synthetic.txt"}


def write_config(folder: Path, sources: dict[str, Path], **settings) -> Path:
    config = {
        "title": "Reader study 1",
        "seed": 5,
        "real": [{"path": str(sources["real"]), "label_map": "phantom"}],
        "synthetic": [{"path": str(sources["synthetic"]), "label_map": "phantom"}],
        **settings,
    }
    path = folder / "study.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def create(config: Path, out: Path, *extra: str) -> int:
    return main(
        ["turing", "create", "--config", str(config), "--out", str(out), "--no-progress", *extra]
    )


@pytest.fixture(scope="module")
def study(sources, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("turing_study")
    assert create(write_config(folder, sources), folder / "study") == 0
    return folder / "study"


def items_of(study: Path) -> dict[str, np.ndarray]:
    info = read_study(study)
    return {
        i: np.fromfile(study / "items" / f"{i}.raw", "<i2").reshape(info.shape)
        for i in info.item_ids
    }


def test_the_key_matches_the_items_and_each_item_is_centred_on_its_tumor(study, sources):
    info, key = read_study(study), read_key(study)
    assert sorted(key) == sorted(info.item_ids)
    assert sorted(p.name for p in (study / "items").iterdir()) == sorted(f"{i}.raw" for i in key)
    middle = tuple(n // 2 for n in info.shape)
    for item_id, item in items_of(study).items():
        entry = key[item_id]
        assert (study / "items" / f"{item_id}.raw").stat().st_size == info.item_bytes
        source = sources["real"] if entry.truth == "real" else sources["synthetic"].parent
        assert Path(entry.source_image).is_relative_to(source)
        image, label = load_image(entry.source_image), load_label(entry.source_label)
        centre = tuple(entry.center_vox)
        # the middle voxel of the item is the source's centre voxel (linear weights of 1 there)
        assert item[middle] == image.array[centre]
        # numbered in C order (the first voxel of each component), as the key's are
        components, _ = connected_components(np.ascontiguousarray(label.array == 2))
        assert components[centre] == entry.component
        volume_ml = (components == entry.component).sum() * np.prod(image.spacing_mm) / 1000
        assert entry.volume_ml == pytest.approx(volume_ml, rel=1e-3)
        assert entry.size_class == size_class_of(entry.diameter_mm, "liver")
        assert entry.organ == "liver" and entry.generator == ""


def test_every_item_is_on_the_coarsest_grid_in_one_shape_in_lps(study, sources):
    info = read_study(study)
    # real scans are 3 mm isotropic, synthetic 2.5 x 2.5 x 3.5 (x, y, z): coarsest per axis
    assert info.spacing_mm == (3.5, 3.0, 3.0)
    assert all(n % 2 == 1 for n in info.shape)
    # auto crop: the largest tumor (30 mm, a few voxels more as drawn) + 2 x 20 mm
    extent = [n * s for n, s in zip(info.shape, info.spacing_mm)]
    assert all(70 <= e <= 90 for e in extent), extent
    assert info.presets == {"abdomen": (400.0, 40.0), "liver": (150.0, 60.0)}


def test_the_lps_view_is_the_same_anatomy_whatever_the_file_order():
    ct, _ = make_phantom(1, shape=(40, 32, 24), spacing_mm=(4.0, 4.0, 5.0))
    flipped = ct.array[::-1, ::-1]
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [39, 31]
    ras, lps = LpsGrid.of(ct.affine, ct.shape), LpsGrid.of(ct.affine @ flip, ct.shape)
    assert np.array_equal(ras.view(ct.array), lps.view(flipped))
    assert ras.spacing_zyx == (5.0, 4.0, 4.0)
    view = ras.view(ct.array)
    # x grows to the patient's left: in this RAS file that is decreasing i
    assert view[3, 4, 0] == ct.array[39, 31 - 4, 3]
    assert ras.zyx_of((39, 27, 3)) == (3.0, 4.0, 0.0)


def test_every_item_passes_through_the_same_interpolation():
    scan = np.random.default_rng(0).integers(-100, 200, (9, 9, 9)).astype(np.int16)
    same = crop_item(scan, (4, 4, 4), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (5, 5, 5))
    assert np.array_equal(same, scan[2:7, 2:7, 2:7])
    coarser = crop_item(scan, (4, 4, 4), (1.0, 1.0, 1.0), (1.0, 1.5, 1.0), (5, 5, 5))
    assert coarser[2, 2, 2] == scan[4, 4, 4]
    assert coarser[2, 3, 2] == np.rint((scan[4, 5, 4] + scan[4, 6, 4]) / 2)  # y = 5.5: halfway
    assert (crop_item(scan, (0, 0, 0), (1, 1, 1), (1, 1, 1), (5, 5, 5))[:2] == -1024).all()


def test_fraction_sizes_and_organs_are_honoured(sources, tmp_path):
    config = write_config(
        tmp_path, sources, size_classes=["small", "medium"], synthetic_fraction=0.25, n_items=8
    )
    output = create_study(load_study(config), tmp_path / "study", progress=False)
    truths = [e.truth for e in output.key]
    assert truths.count("synthetic") == 2 and truths.count("real") == 6
    real = [e.size_class for e in output.key if e.truth == "real"]
    assert sorted(real) == ["medium"] * 3 + ["small"] * 3  # balanced: 3 of each available
    assert {e.size_class for e in output.key if e.truth == "synthetic"} == {"small", "medium"}
    assert {e.organ for e in output.key} == {"liver"}
    # as many as the sources allow at 0.5: 9 real and 9 synthetic tumors -> 18 items
    default = create_study(
        load_study(write_config(tmp_path / "all", sources)), tmp_path / "all" / "s", progress=False
    )
    assert len(default.key) == 18 and sum(e.truth == "real" for e in default.key) == 9


def test_the_order_is_shuffled_not_grouped_by_class(study):
    info, key = read_study(study), read_key(study)
    truths = [key[i].truth for i in info.item_ids]
    assert truths != sorted(truths) and truths != sorted(truths, reverse=True)


def all_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_the_same_seed_gives_the_same_bytes_and_another_seed_another_study(
    study, sources, tmp_path
):
    config = write_config(tmp_path, sources)
    assert create(config, tmp_path / "again") == 0
    first, again = all_files(study), all_files(tmp_path / "again")
    assert sorted(first) == sorted(again)
    assert [name for name in first if first[name] != again[name]] == []
    assert "key/key.json" in first and "key/items.png" in first
    other = write_config(tmp_path / "other", sources, seed=6)
    assert create(other, tmp_path / "other" / "study") == 0
    ids, other_ids = read_study(study).item_ids, read_study(tmp_path / "other" / "study").item_ids
    assert not set(ids) & set(other_ids)
    assert read_study(study).study_id != read_study(tmp_path / "other" / "study").study_id


def test_nothing_readers_reach_tells_the_items_apart(study, sources):
    info = read_study(study)
    sizes = {p.stat().st_size for p in (study / "items").iterdir()}
    assert sizes == {info.item_bytes}
    # one modification time for all: no Last-Modified or ETag tells which were cut together
    assert len({p.stat().st_mtime_ns for p in (study / "items").iterdir()}) == 1
    assert all(re.fullmatch(r"[0-9a-f]{16}\.raw", p.name) for p in (study / "items").iterdir())
    assert all(ITEM_ID.fullmatch(i) for i in info.item_ids)
    data = json.loads((study / "study.json").read_text(encoding="utf-8"))
    assert set(data) == set(StudyInfo.__dataclass_fields__)
    # window presets are the same for every item (one of them is called "liver"): left out
    public = json.dumps({k: v for k, v in data.items() if k != "presets"}).lower()
    for word in ("real", "synthetic", "liver", "phantom", "r0", "s3", str(sources["root"]).lower()):
        assert word not in public, word
    assert sorted(p.name for p in study.iterdir()) == ["items", "key", "study.json"]


def test_the_summary_counts_items_per_class_organ_and_size(sources, tmp_path, capsys):
    assert create(write_config(tmp_path, sources, n_items=6), tmp_path / "s") == 0
    out = capsys.readouterr().out
    assert "Reader study 1: 6 items (3 real, 3 synthetic)" in out
    assert re.search(r"real liver\s+1\s+1\s+1", out) and re.search(
        r"synthetic liver\s+1\s+1\s+1", out
    )
    assert "grid: 3.5 x 3 x 3 mm" in out and "bytes per item" in out


def test_a_manifest_names_the_generator_of_its_synthetic_items(sources, tmp_path):
    from tumorsynth.io.datasets import discover_cases
    from tumorsynth.pipelines.batch import BatchSettings, run_batch
    from tumorsynth.pipelines.synthesize import TumorRequest

    settings = BatchSettings((TumorRequest("liver", 2, "medium"),), label_map="phantom", seed=1)
    run_batch(discover_cases(sources["real"])[:1], tmp_path / "synth", settings, progress=False)
    config = write_config(tmp_path, sources, n_items=4)
    config_data = yaml.safe_load(config.read_text(encoding="utf-8"))
    config_data["synthetic"] = [{"path": str(tmp_path / "synth" / "manifest.jsonl")}]
    config.write_text(yaml.safe_dump(config_data))
    # the synthetic tumors are all of one size class, the real ones drawn from three
    with pytest.warns(UserWarning, match="only among the real items.*readers may tell real from"):
        output = create_study(load_study(config), tmp_path / "study", progress=False)
    synthetic = [e for e in output.key if e.truth == "synthetic"]
    assert len(synthetic) == 2 and {e.generator for e in synthetic} == {"heuristic"}
    # the real tumor the scan already had (drawn above) is not taken for a synthetic one
    for entry in synthetic:
        source = load_label(sources["real"] / "labelsTr" / "r0.nii.gz").array
        assert source[tuple(entry.center_vox)] != 2


def test_native_spacing_is_refused_for_scans_of_different_spacings(sources, tmp_path, capsys):
    config = write_config(tmp_path, sources, spacing_mm="native")
    assert create(config, tmp_path / "s") == 2
    assert "different spacings" in capsys.readouterr().err and not (tmp_path / "s").exists()
    # a synthetic scan of the real ones' spacing (3 mm), stored LPS: native is their spacing
    ct, seg = tumor_phantom(7, (3.0, 3.0, 3.0), (96, 80, 48), lps=True)
    save_volume(ct, tmp_path / "same" / "ct.nii.gz")
    save_volume(seg, tmp_path / "same" / "seg.nii.gz")
    (tmp_path / "same" / "list.txt").write_text("ct.nii.gz seg.nii.gz\n")
    same = write_config(
        tmp_path / "same",
        {**sources, "synthetic": tmp_path / "same" / "list.txt"},
        spacing_mm="native",
    )
    assert create(same, tmp_path / "same" / "s") == 0
    assert read_study(tmp_path / "same" / "s").spacing_mm == (3.0, 3.0, 3.0)
    fixed = write_config(tmp_path / "fixed", sources, spacing_mm=[4, 2, 2], crop_mm=[60, 50, 50])
    assert create(fixed, tmp_path / "fixed" / "s") == 0
    info = read_study(tmp_path / "fixed" / "s")
    assert info.spacing_mm == (4.0, 2.0, 2.0) and info.shape == (15, 25, 25)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"colour": "red"}, r"unknown setting\(s\) \['colour'\]"),
        ({"synthetic_fraction": 1.0}, r"synthetic_fraction: expected a number in \(0, 1\)"),
        ({"organs": ["lung"]}, r"organs: expected organs with a profile .* found \['lung'\]"),
        ({"size_classes": ["huge"]}, r"size_classes\[0\]: expected one of 'tiny'"),
        (
            {"real": [{"path": "nowhere.txt", "label_map": "lits"}]},
            r"real\[0\]\.path: nowhere.txt: not found",
        ),
        ({"real": []}, r"real: expected at least one source"),
        ({"organs": ["kidney"]}, r"real: none; synthetic: none"),
        ({"n_items": 40}, r"n_items 40 .* needs 20 real and 20 synthetic .* real: liver medium 3"),
        ({"default_preset": "lung"}, r"default_preset: expected one of the presets"),
    ],
    ids=[
        "unknown key",
        "fraction",
        "organ",
        "size class",
        "missing source",
        "no source",
        "no tumors",
        "too few",
        "preset",
    ],
)
def test_bad_settings_are_refused_naming_the_file_and_leave_no_folder(
    sources, tmp_path, capsys, settings, message
):
    config = write_config(tmp_path, sources, **settings)
    assert create(config, tmp_path / "out" / "study") == 2
    err = capsys.readouterr().err
    assert str(config) in err and re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_a_missing_config_and_a_used_out_are_refused(sources, tmp_path, capsys):
    assert create(tmp_path / "none.yaml", tmp_path / "s") == 2
    assert "none.yaml: expected a reader study configuration" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert create(write_config(tmp_path, sources), tmp_path / "used") == 2
    assert "found files in it" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    assert create(write_config(tmp_path, sources, n_items=2), tmp_path / "empty") == 0
    assert (tmp_path / "empty" / "study.json").is_file()


def test_a_failure_while_writing_leaves_nothing_behind(sources, tmp_path):
    """A scan whose label lies on another grid is found when its items are cut: by then the
    study is being built, in a hidden folder that must go."""
    made = sources["synthetic"].parent
    image = load_image(made / "s3_ct.nii.gz")
    affine = image.affine.copy()
    affine[:3, 3] += 5.0  # 5 mm off the label's grid
    save_volume(Volume(image.array, affine, image.header), tmp_path / "moved_ct.nii.gz")
    (tmp_path / "moved.txt").write_text(f"moved_ct.nii.gz {made / 's3_seg.nii.gz'}\n")
    config = write_config(tmp_path, {**sources, "synthetic": tmp_path / "moved.txt"})
    with pytest.raises(InputError, match="affine differs"):
        create_study(load_study(config), tmp_path / "out" / "study", progress=False)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "moved.txt",
        "moved_ct.nii.gz",
        "study.yaml",
    ]


def test_source_problems_are_named(sources, tmp_path, capsys):
    unmapped = write_config(tmp_path, sources, synthetic=[{"path": str(sources["synthetic"])}])
    assert create(unmapped, tmp_path / "s") == 2
    assert "synthetic[0].label_map: a dataset folder or list file needs its label map" in (
        capsys.readouterr().err
    )
    generic = write_config(
        tmp_path, sources, real=[{"path": str(sources["real"]), "label_map": "msd"}]
    )
    assert create(generic, tmp_path / "s") == 2
    err = capsys.readouterr().err
    assert "r0.nii.gz: tumors of organ 'organ' (label map 'msd') cannot be classed" in err
    assert "organs: [liver]" in err
    # naming the organ makes msd's generic tumor label that organ's
    assert create(generic, tmp_path / "s", "--set", "organs=[liver]", "--set", "n_items=4") == 0
    assert len(read_key(tmp_path / "s")) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    twice = write_config(tmp_path, {**sources, "synthetic": sources["real"]})
    assert create(twice, tmp_path / "twice") == 2
    assert "is among the real and the synthetic sources" in capsys.readouterr().err


def test_the_shipped_example_loads():
    from tumorsynth._settings import load_config
    from tumorsynth.cli.config import example_path
    from tumorsynth.turing.study_settings import StudySettings

    config = load_config(StudySettings, example_path("turing_study"))
    assert config.organs == ("liver",) and config.synthetic_fraction == 0.5
    assert [p.name for p in config.presets] == ["abdomen", "liver"]
