"""ContextCache: each scan's organ analysis kept in memory and on disk, found again exactly."""

from __future__ import annotations

import multiprocessing
import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from tumorsynth.errors import InputError, OutputError, PlacementError
from tumorsynth.organs import KIDNEY, LIVER
from tumorsynth.organs.context import OrganContext
from tumorsynth.organs.context_cache import ContextCache

SPACING = (1.5, 1.5, 2.0)


def blob(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A liver-like ellipsoid in noise (int16 HU), its mask, and a small 'tumor' inside it."""
    rng = np.random.default_rng(seed)
    grid = np.indices((72, 64, 40)).astype(np.float32)
    r = np.sqrt(
        ((grid[0] - 36) / 28) ** 2 + ((grid[1] - 32) / 24) ** 2 + ((grid[2] - 20) / 15) ** 2
    )
    organ = r < 1.0
    image = np.where(organ, 105.0, -90.0) + rng.normal(0, 12, organ.shape)
    tumor = ((grid[0] - 30) ** 2 + (grid[1] - 30) ** 2 + (grid[2] - 20) ** 2) < 16
    return image.astype(np.int16), organ, tumor & organ


def assert_same_analysis(a: OrganContext, b: OrganContext) -> None:
    assert a.bbox == b.bbox and a.stride == b.stride and a.volume_shape == b.volume_shape
    assert asdict(a.parenchyma) == asdict(b.parenchyma)
    assert a.occupied == b.occupied
    for name in ("depth_mm", "clearance_mm", "exclusion_mm"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name


def test_a_second_lookup_of_the_same_scan_is_a_hit_with_the_same_analysis():
    image, organ, tumor = blob()
    cache = ContextCache()
    first = cache.get(image, organ, SPACING, LIVER, avoid_mask=tumor)
    again = cache.get(image.copy(), organ.copy(), SPACING, LIVER, avoid_mask=tumor.copy())
    assert (cache.hits, cache.misses) == (1, 1)
    assert_same_analysis(first, OrganContext.build(image, organ, SPACING, LIVER, avoid_mask=tumor))
    assert_same_analysis(first, again)
    assert again.depth_mm is first.depth_mm  # grids shared, read-only
    assert not again.depth_mm.flags.writeable


def test_each_lookup_gets_its_own_occupied_spheres():
    image, organ, tumor = blob()
    cache = ContextCache()
    a = cache.get(image, organ, SPACING, LIVER, avoid_mask=tumor)
    a.occupy(np.array([36.0, 32.0, 20.0]), 10.0)
    b = cache.get(image, organ, SPACING, LIVER, avoid_mask=tumor)
    assert len(a.occupied) == len(b.occupied) + 1 == 2


@pytest.mark.parametrize(
    "change",
    ["image voxel", "organ voxel", "tumor voxel", "spacing", "profile", "exclusion", "margin"],
)
def test_anything_the_analysis_reads_is_a_miss(change):
    image, organ, tumor = blob()
    exclude = np.zeros_like(organ)
    exclude[2, 2, 2] = True
    cache = ContextCache()
    base = {"avoid_mask": tumor, "exclude_mask": exclude, "exclude_margin_mm": 5.0}
    cache.get(image, organ, SPACING, LIVER, **base)
    args, kwargs = [image.copy(), organ.copy(), SPACING, LIVER], dict(base)
    if change == "image voxel":
        args[0][36, 32, 20] += 1
    elif change == "organ voxel":
        args[1][36, 32, 3] = not args[1][36, 32, 3]
    elif change == "tumor voxel":
        kwargs["avoid_mask"] = tumor.copy()
        kwargs["avoid_mask"][36, 32, 20] = True
    elif change == "spacing":
        args[2] = (1.5, 1.5, 2.5)
    elif change == "profile":
        args[3] = KIDNEY
    elif change == "exclusion":
        kwargs["exclude_mask"] = np.zeros_like(organ)
        kwargs["exclude_mask"][3, 2, 2] = True
    else:
        kwargs["exclude_margin_mm"] = 6.0
    found = cache.get(*args, **kwargs)
    assert (cache.hits, cache.misses) == (0, 2)
    assert_same_analysis(found, OrganContext.build(*args, **kwargs))


def test_voxels_the_analysis_does_not_read_do_not_matter():
    """Far outside the organ's box (and the slices its noise filter reads), nothing is read."""
    image, organ, _ = blob()
    cache = ContextCache()
    cache.get(image, organ, SPACING, LIVER)
    moved = image.copy()
    moved[0, 0, :] = 900  # outside the organ's box in x and y
    found = cache.get(moved, organ, SPACING, LIVER)
    assert cache.hits == 1
    assert_same_analysis(found, OrganContext.build(moved, organ, SPACING, LIVER))


def test_the_least_recently_used_scan_is_dropped():
    cache = ContextCache(max_scans=1)
    a, b = blob(0), blob(1)
    cache.get(a[0], a[1], SPACING, LIVER)
    cache.get(b[0], b[1], SPACING, LIVER)
    cache.get(a[0], a[1], SPACING, LIVER)
    assert (cache.hits, cache.misses) == (0, 3)
    none = ContextCache(max_scans=0)
    none.get(a[0], a[1], SPACING, LIVER)
    none.get(a[0], a[1], SPACING, LIVER)
    assert none.misses == 2


def test_an_absent_organ_is_a_placement_error():
    image, organ, _ = blob()
    with pytest.raises(PlacementError, match="absent"):
        ContextCache().get(image, np.zeros_like(organ), SPACING, LIVER)


def test_the_folder_serves_another_process_without_building(tmp_path, monkeypatch):
    image, organ, tumor = blob()
    exclude = np.zeros_like(organ)
    exclude[5:8, 5:8, 5:8] = True
    kwargs = {"avoid_mask": tumor, "exclude_mask": exclude, "exclude_margin_mm": 4.0}
    built = ContextCache(folder=tmp_path / "analyses").get(image, organ, SPACING, LIVER, **kwargs)
    files = list((tmp_path / "analyses").iterdir())
    assert len(files) == 1 and files[0].name.startswith("organ_") and files[0].suffix == ".npz"

    def no_build(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(OrganContext, "build", no_build)
    loaded = ContextCache(folder=tmp_path / "analyses").get(image, organ, SPACING, LIVER, **kwargs)
    assert_same_analysis(loaded, built)
    assert loaded.exclude_margin_mm == built.exclude_margin_mm


@pytest.mark.parametrize("damage", ["truncated", "garbage", "another scan's", "empty"])
def test_a_file_that_does_not_match_is_built_again_and_replaced(tmp_path, monkeypatch, damage):
    image, organ, _ = blob()
    folder = tmp_path / "analyses"
    ContextCache(folder=folder).get(image, organ, SPACING, LIVER)
    (path,) = folder.iterdir()
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an analysis" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid file of another scan under this scan's name
        other_folder = tmp_path / "other"
        other = blob(1)
        ContextCache(folder=other_folder).get(other[0], other[1], SPACING, LIVER)
        path.write_bytes(next(other_folder.iterdir()).read_bytes())
    found = ContextCache(folder=folder).get(image, organ, SPACING, LIVER)
    expected = OrganContext.build(image, organ, SPACING, LIVER)
    assert_same_analysis(found, expected)
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left
    monkeypatch.setattr(OrganContext, "build", None)  # the file written again serves now
    assert_same_analysis(ContextCache(folder=folder).get(image, organ, SPACING, LIVER), expected)


def _write_in_process(folder: str, seed: int) -> None:
    image, organ, _ = blob(seed)
    ContextCache(folder=folder).get(image, organ, SPACING, LIVER)


def test_concurrent_writers_leave_one_whole_file(tmp_path):
    folder = tmp_path / "shared"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_in_process, args=(str(folder), 0)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert all(w.exitcode == 0 for w in workers)
    (path,) = folder.iterdir()
    image, organ, _ = blob(0)
    cache = ContextCache(folder=folder)
    assert_same_analysis(
        cache.get(image, organ, SPACING, LIVER), OrganContext.build(image, organ, SPACING, LIVER)
    )


def test_a_pickled_cache_arrives_empty_with_its_settings(tmp_path):
    image, organ, _ = blob()
    cache = ContextCache(max_scans=3, folder=tmp_path)
    cache.get(image, organ, SPACING, LIVER)
    copy = pickle.loads(pickle.dumps(cache))
    assert (copy.max_scans, copy.folder) == (3, Path(tmp_path))
    assert not copy._kept


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(InputError, match="max_scans"):
        ContextCache(max_scans=-1)
    with pytest.raises(InputError, match="max_scans"):
        ContextCache(max_scans=True)  # type: ignore[arg-type]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises((InputError, OutputError)):
        ContextCache(folder=afile)
