"""Online synthesis for training: cached organ analysis, crop-first synthesis, loader workers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from tumorsynth.box import Box
from tumorsynth.errors import InputError
from tumorsynth.io.records import TumorRecord
from tumorsynth.organs.context_cache import ContextCache
from tumorsynth.pipelines import replay_case, synthesize_case
from tumorsynth.pipelines.synthesize import RegionOutput
from tumorsynth.transforms import RandTumorSynthd

KEYS = ("image", "label")
LIVER, LIVER_TUMOR = 1, 2


def phantom_case(phantom, **options):
    ct, seg = phantom
    settings = {"spacing_mm": ct.spacing_mm, "label_map": "phantom", "affine": ct.affine}
    return synthesize_case(ct.array, seg.array, **settings, **options)


def meta_sample(phantom) -> dict[str, MetaTensor]:
    ct, seg = phantom
    affine = torch.as_tensor(ct.affine)
    return {
        "image": MetaTensor(torch.as_tensor(ct.array[None].astype(np.float32)), affine=affine),
        "label": MetaTensor(torch.as_tensor(seg.array[None].astype(np.uint8)), affine=affine),
    }


def fingerprint(records) -> list[tuple[float, ...]]:
    return [tuple(r["center_vox"]) for r in records]


# -- the cached organ analysis -----------------------------------------------------------------
@pytest.mark.parametrize("size", ["mixed", "small"])
def test_same_seed_same_case_with_and_without_the_cache(phantom, size):
    cache = ContextCache()
    for seed in range(4):
        plain = phantom_case(phantom, organ="liver", size=size, rng=seed)
        cached = phantom_case(phantom, organ="liver", size=size, rng=seed, context_cache=cache)
        assert np.array_equal(plain.image, cached.image)
        assert np.array_equal(plain.label, cached.label)
        assert plain.records == cached.records
    assert (cache.hits, cache.misses) == (3, 1)


def test_same_seed_same_case_from_an_analysis_another_process_wrote(phantom, tmp_path):
    writer = ContextCache(folder=tmp_path / "analyses")
    phantom_case(phantom, organ="liver", size="mixed", rng=0, context_cache=writer)
    reader = ContextCache(folder=tmp_path / "analyses")  # memory empty: loads the file
    for seed in range(3):
        plain = phantom_case(phantom, organ="liver", size="mixed", rng=seed)
        loaded = phantom_case(phantom, organ="liver", size="mixed", rng=seed, context_cache=reader)
        assert np.array_equal(plain.image, loaded.image)
        assert np.array_equal(plain.label, loaded.label)
        assert plain.records == loaded.records
    assert (reader.misses, writer.misses) == (1, 1)


def test_same_seed_same_case_with_excluded_labels_and_the_cache(phantom):
    ct, seg = phantom
    lesion = seg.array.copy()
    lesion[60:63, 50:53, 30:33] = 9  # a "lesion" id to keep clear of
    options = {"organ": "liver", "count": 2, "exclude_labels": [9], "exclude_margin_mm": 5.0}
    cache = ContextCache()
    for seed in range(2):
        plain = synthesize_case(
            ct.array, lesion, spacing_mm=ct.spacing_mm, label_map="phantom", rng=seed, **options
        )
        cached = synthesize_case(
            ct.array,
            lesion,
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            rng=seed,
            context_cache=cache,
            **options,
        )
        assert np.array_equal(plain.image, cached.image)
        assert plain.records == cached.records


def test_the_transform_gives_the_same_tumors_with_and_without_its_cache(phantom):
    sample = meta_sample(phantom)
    kept = RandTumorSynthd(KEYS, organ="liver", label_map="phantom", size="mixed")
    uncached = RandTumorSynthd(
        KEYS, organ="liver", label_map="phantom", size="mixed", cache_scans=0
    )
    kept.set_random_state(3)
    uncached.set_random_state(3)
    for _ in range(3):
        a, b = kept(sample), uncached(sample)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert kept.contexts.hits == 2 and uncached.contexts.hits == 0


# -- synthesis in a window -----------------------------------------------------------------------
def test_a_window_gets_its_tumors_and_its_records_replay_on_the_region(phantom):
    ct, seg = phantom
    window = Box((64, 40, 28), (32, 32, 24))  # in the liver
    out = phantom_case(phantom, organ="liver", count=2, size="small", rng=5, window=window)
    assert isinstance(out, RegionOutput)
    region = out.region
    assert out.image.shape == out.label.shape == region.shape
    lo, hi = np.array(region.origin), np.array(region.origin) + region.shape
    assert np.all(lo <= window.origin) and np.all(np.add(window.origin, window.shape) <= hi)
    assert len(out.records) == 2
    for record in out.records:
        centre = np.asarray(record.center_vox) + region.origin  # in the scan
        assert np.all(centre >= np.array(window.origin) - 1)
        assert np.all(centre <= np.add(window.origin, window.shape))
        assert record.extra["region"] == {
            "origin": list(region.origin),
            "shape": list(region.shape),
        }
        world = ct.affine @ np.append(centre, 1.0)
        np.testing.assert_allclose(world[:3], record.center_mm, atol=1e-3)  # records: 0.001 mm
    shifted = ct.affine.copy()
    shifted[:3, 3] += ct.affine[:3, :3] @ np.asarray(region.origin, dtype=float)
    again = replay_case(
        ct.array[region.slices],
        seg.array[region.slices],
        out.records,
        spacing_mm=ct.spacing_mm,
        label_map="phantom",
        affine=shifted,
    )
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)
    assert (out.label == LIVER_TUMOR).sum() == sum(r.n_voxels for r in out.records)


def test_a_window_outside_the_scan_is_refused(phantom):
    with pytest.raises(InputError, match="window"):
        phantom_case(phantom, organ="liver", count=1, rng=0, window=Box((120, 0, 0), (32, 8, 8)))


def test_a_drawn_count_is_the_organs_and_a_window_sees_a_share_of_it(phantom):
    """The whole organ's plan seen through a window: its largest tumor always, the others
    with the window's share of the organ, so a small window holds fewer than the organ."""
    small = Box((70, 48, 36), (12, 12, 12))
    counts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(12):
            out = phantom_case(phantom, organ="liver", size="tiny", rng=seed, window=small)
            counts.append(len(out.records))
            plan = phantom_case(phantom, organ="liver", size="tiny", rng=seed)
            assert 1 <= len(out.records) <= len(plan.records)
    assert np.mean(counts) < 4  # the liver's plan for tiny tumors is 3-10


# -- crops first ---------------------------------------------------------------------------------
def crop_transform(ratios, **options) -> RandTumorSynthd:
    settings = {
        "organ": "liver",
        "label_map": "phantom",
        "size": "small",
        "records_key": "tumors",
        "crop_size": (32, 32, 24),
        "crop_ratios": ratios,
        "num_samples": 3,
    }
    settings.update(options)
    return RandTumorSynthd(KEYS, **settings)  # type: ignore[arg-type]


def test_crops_have_the_size_asked_for_and_the_affine_of_their_place(phantom):
    ct, _ = phantom
    crops = crop_transform((1.0, 1.0, 1.0)).set_random_state(0)(meta_sample(phantom))
    assert isinstance(crops, list) and len(crops) == 3
    for crop in crops:
        assert tuple(crop["image"].shape) == tuple(crop["label"].shape) == (1, 32, 32, 24)
        origin = np.linalg.solve(ct.affine, crop["image"].affine.numpy())[:3, 3]
        expected = ct.array[tuple(slice(int(o), int(o) + n) for o, n in zip(origin, (32, 32, 24)))]
        tumor = crop["label"].numpy()[0] == LIVER_TUMOR
        assert np.array_equal(
            crop["image"].numpy()[0][~tumor & ~near(tumor)], expected[~tumor & ~near(tumor)]
        )


def near(mask: np.ndarray) -> np.ndarray:
    """Voxels within 6 voxels of ``mask`` (a tumor's edge, texture and mass effect)."""
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=6) if mask.any() else mask


@pytest.mark.parametrize(
    ("ratios", "centre_ids"), [((1, 0, 0), {0, 3, 5, 7, 8, 9}), ((0, 1, 0), {LIVER})]
)
def test_background_and_organ_crops_are_centred_on_their_class_and_get_no_tumor(
    phantom, ratios, centre_ids
):
    for crop in crop_transform(ratios).set_random_state(1)(meta_sample(phantom)):
        label = crop["label"].numpy()[0]
        assert not (label == LIVER_TUMOR).any() and crop["tumors"] == []
    _, seg = phantom
    transform = crop_transform(ratios, crop_size=(1, 1, 1), num_samples=20)
    for crop in transform.set_random_state(2)(meta_sample(phantom)):
        origin = np.rint(np.linalg.solve(phantom[0].affine, crop["image"].affine.numpy())[:3, 3])
        assert int(seg.array[tuple(origin.astype(int))]) in centre_ids


def test_tumor_crops_hold_their_tumors_and_replay_on_their_region(phantom):
    ct, seg = phantom
    crops = crop_transform((0, 0, 1)).set_random_state(4)(meta_sample(phantom))
    for crop in crops:
        label = crop["label"].numpy()[0]
        assert (label == LIVER_TUMOR).any() and crop["tumors"]
        first = crop["tumors"][0]
        region = Box(
            tuple(first["extra"]["region"]["origin"]), tuple(first["extra"]["region"]["shape"])
        )
        origin = np.array(first["crop"]["origin"])
        shifted = ct.affine.copy()
        shifted[:3, 3] += ct.affine[:3, :3] @ np.asarray(region.origin, dtype=float)
        again = replay_case(
            ct.array[region.slices].astype(np.float32),
            seg.array[region.slices],
            [
                TumorRecord.from_dict({k: v for k, v in r.items() if k != "crop"})
                for r in crop["tumors"]
            ],
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            affine=shifted,
        )
        inner = region.inner(Box(tuple(int(o) for o in origin), (32, 32, 24)))
        assert np.array_equal(again.image[inner], crop["image"].numpy()[0])
        assert np.array_equal(again.label[inner], label)


def test_same_seed_same_crops_and_the_input_is_not_written(phantom):
    sample = meta_sample(phantom)
    before = sample["image"].clone()
    a = crop_transform((1, 1, 2)).set_random_state(7)(sample)
    b = crop_transform((1, 1, 2)).set_random_state(7)(sample)
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert all(torch.equal(x["label"], y["label"]) for x, y in zip(a, b))
    assert torch.equal(sample["image"], before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"crop_size": (32, 32)}, "crop_size"),
        ({"crop_size": 0}, "crop_size"),
        ({"crop_ratios": (1, 1)}, "crop_ratios"),
        ({"crop_ratios": (0, 0, 0)}, "crop_ratios"),
        ({"crop_ratios": (1, -1, 1)}, "crop_ratios"),
        ({"num_samples": 0}, "num_samples"),
        ({"cache_scans": -1}, "max_scans"),
    ],
)
def test_bad_crop_settings_are_refused_in_init(options, message):
    with pytest.raises(InputError, match=message):
        crop_transform((1, 1, 1), **options)


# -- loader workers ------------------------------------------------------------------------------
class _Draws(torch.utils.data.Dataset):
    """The same phantom sample four times, through one transform."""

    def __init__(self, sample, transform):
        self.sample, self.transform = sample, transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return fingerprint(self.transform(self.sample)["tumors"])


def worker_draws(phantom, seed: int, loader_seed: int) -> list:
    transform = RandTumorSynthd(
        KEYS, organ="liver", label_map="phantom", count=1, size="tiny", records_key="tumors"
    ).set_random_state(seed)
    loader = torch.utils.data.DataLoader(
        _Draws(meta_sample(phantom), transform),
        batch_size=None,
        num_workers=2,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    return list(loader)


def test_plain_torch_loader_workers_draw_different_tumors_reproducibly(phantom):
    draws = worker_draws(phantom, seed=0, loader_seed=0)
    # Items 0 and 2 come from worker 0, items 1 and 3 from worker 1.
    assert draws[0] != draws[1] and draws[2] != draws[3]
    assert draws == worker_draws(phantom, seed=0, loader_seed=0)
    assert draws != worker_draws(phantom, seed=1, loader_seed=0)
