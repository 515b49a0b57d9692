"""The pipeline's properties on the real CTs of ../shared/data (fail in CI when missing).

IRCAD 1.7: liver and kidney at 0.78 x 0.78 x 1.6 mm (LPS); IRCAD 1.17: liver with two real tumors;
TotalSegmentator example: liver, pancreas and kidneys at 3 mm (RAS), non-contrast.
"""

import json
import warnings

import edt
import numpy as np
import pytest
from scipy import ndimage as ndi
from tiny import far_from

from tumorsynth.errors import PlacementError, PlacementWarning
from tumorsynth.io.records import TumorRecord
from tumorsynth.pipelines import TumorRequest, replay_case, synthesize_case
from tumorsynth.realism import lesion_appearance

IRCAD_MAP = {"liver": 1, "kidney": 5}


def synth(case, label_map, **kw):
    ct, seg = case
    return synthesize_case(
        ct.array, seg.array, spacing_mm=ct.spacing_mm, label_map=label_map, affine=ct.affine, **kw
    )


@pytest.mark.parametrize(
    "organ,size",
    [("liver", "small"), ("liver", "large"), ("kidney", "small"), ("kidney", "medium")],
)
def test_p07_tumors_sit_in_the_organ_and_replay_exactly(p07, organ, size):
    ct, seg = p07
    out = synth(p07, IRCAD_MAP, organ=organ, count=2 if size != "large" else 1, size=size, rng=7)
    tumor_id, organ_id = (2, 1) if organ == "liver" else (6, 5)
    tumor = out.label == tumor_id
    assert tumor.sum() == sum(r.n_voxels for r in out.records) > 0
    organ_mask = seg.array == IRCAD_MAP[organ]
    in_organ = organ_mask[tumor].mean()
    exophytic = any(r.exophytic for r in out.records)
    assert in_organ > (0.4 if exophytic else 0.75)
    if not exophytic:  # outside only by the allowed bulge plus the organ edge pushed by mass effect
        box = tuple(slice(max(0, int(i.min()) - 12), int(i.max()) + 13) for i in np.nonzero(tumor))
        near = ~far_from(organ_mask[box], ct.spacing_mm, 6.0)
        assert near[tumor[box]].all()
    for r in out.records:
        assert r.tumor_mean_hu < r.parenchyma_mean_hu  # hypodense relative to this scan's organ
    records = [TumorRecord.from_dict(json.loads(r.to_json())) for r in out.records]
    again = replay_case(
        ct.array,
        seg.array,
        records,
        spacing_mm=ct.spacing_mm,
        label_map=IRCAD_MAP,
        affine=ct.affine,
    )
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)
    assert out.image.dtype == ct.array.dtype == np.int16


def test_p07_voxels_far_from_tumors_are_untouched(p07):
    ct, _ = p07
    out = synth(
        p07,
        IRCAD_MAP,
        requests=[TumorRequest("liver", 3, "medium"), TumorRequest("kidney", 1, "small")],
        rng=3,
    )
    tumors = np.isin(out.label, [2, 6])
    reach = max(1.6 * max(r.radii_mm) + 10 for r in out.records)
    far = far_from(tumors, ct.spacing_mm, reach)
    assert far.mean() > 0.9
    assert np.array_equal(out.image[far], ct.array[far])


def test_p07_contrast_is_relative_to_the_measured_parenchyma(p07):
    ct, seg = p07
    # IRCAD 1.7's liver HU from the voxels: the median over the liver deeper than 3 mm (scipy's
    # exact distance map). The pipeline also leaves out bright vessels and reads a 1.5 mm grid,
    # hence the tolerance.
    box = ndi.find_objects((seg.array == 1).astype(np.uint8))[0]
    liver = np.pad(seg.array[box] == 1, 1)
    deep = ndi.distance_transform_edt(liver, sampling=ct.spacing_mm)[1:-1, 1:-1, 1:-1] > 3.0
    liver_hu = float(np.median(ct.array[box][deep]))
    out = synth(p07, IRCAD_MAP, organ="liver", count=3, size="medium", rng=1)
    for r in out.records:
        assert r.appearance["parenchyma_hu"] == pytest.approx(liver_hu, abs=3)
        assert -70 < r.contrast_hu < -5
        assert 8 < r.appearance["noise_hu"] < 25


def test_p17_new_tumors_avoid_the_real_ones(p17):
    ct, seg = p17
    out = synth(p17, "lits", organ="liver", count=5, size="small", rng=2)
    real = seg.array == 2
    assert np.array_equal(out.label[real], np.full(real.sum(), 2, np.uint8))
    new = (out.label == 2) & ~real
    assert new.sum() == sum(r.n_voxels for r in out.records)
    assert new.any()
    assert far_from(real, ct.spacing_mm, 2.0)[new].all()  # at least 2 mm from every real tumor


def test_p17_synthetic_and_real_tumors_look_alike(p17):
    ct, seg = p17
    import cc3d

    comps = cc3d.connected_components(seg.array == 2, connectivity=26)
    real = [lesion_appearance(ct.array, comps == i, seg.array == 1, ct.spacing_mm) for i in (1, 2)]
    out = synth(p17, "lits", organ="liver", count=1, size="medium", rng=5)
    new = (out.label == 2) & (seg.array != 2)
    fake = lesion_appearance(out.image, new, out.label == 1, ct.spacing_mm)
    lo = min(a.contrast_hu for a in real) - 25
    hi = max(a.contrast_hu for a in real) + 15
    assert lo < fake.contrast_hu < hi
    assert fake.cnr < 2 * max(a.cnr for a in real)
    assert fake.core_hu < fake.rim_hu + 5  # no brighter core than rim, like the real ones


@pytest.mark.parametrize(
    "organ,size", [("liver", "medium"), ("pancreas", "tiny"), ("kidney", "small")]
)
def test_totalseg_example_at_3mm(totalseg, organ, size):
    ct, seg = totalseg
    assert ct.spacing_mm == pytest.approx((3.0, 3.0, 3.0))
    out = synth(totalseg, "totalsegmentator", organ=organ, count=1, size=size, rng=0)
    tumor_id = {"liver": 2, "pancreas": 4, "kidney": 6}[organ]
    assert (out.label == tumor_id).sum() == out.records[0].n_voxels > 0
    r = out.records[0]
    assert r.volume_ml > 0
    ids = {"liver": [5], "pancreas": [7], "kidney": [2, 3]}[organ]
    tumor = out.label == tumor_id
    organ_mask = np.isin(seg.array, ids)
    # an exophytic tumor (half of the kidney ones) may lie mostly outside its organ, but never
    # further out than its bulge allows (a box dilation: corners sqrt(3) further)
    assert organ_mask[tumor].mean() > (0.2 if r.exophytic else 0.4)
    outside_mm = edt.edt(~organ_mask, anisotropy=ct.spacing_mm)
    assert outside_mm[tumor].max() <= r.shape["bulge_mm"] * 3**0.5 + max(ct.spacing_mm)
    records = [TumorRecord.from_dict(json.loads(r.to_json()))]
    again = replay_case(
        ct.array,
        seg.array,
        records,
        spacing_mm=ct.spacing_mm,
        label_map="totalsegmentator",
        affine=ct.affine,
    )
    assert np.array_equal(again.image, out.image)


def test_totalseg_labels_convert_to_the_output_convention(totalseg):
    ct, seg = totalseg
    out = synth(totalseg, "totalsegmentator", organ="liver", count=0)
    assert set(np.unique(out.label)) <= {0, 1, 3, 5, 7}  # 7: the colon (TotalSegmentator 20)
    assert np.array_equal(out.label == 1, seg.array == 5)
    assert np.array_equal(out.label == 7, seg.array == 20)
    assert np.array_equal(out.label == 5, np.isin(seg.array, [2, 3]))


def test_a_drawn_count_places_the_large_tumors_that_fit_an_asked_count_is_kept(p07, totalseg):
    # The TotalSegmentator example's liver (30 slices of 3 mm): the profile draws 3 large tumors
    # for seed 3, and only 2 fit. The drawn count is a plan: the ones that fit are placed and the
    # rest named in a warning. (IRCAD 1.7's 1.5 L liver, used here before, now holds all 3: large
    # tumors may reach the surface and be confluent where no deep separate site remains.)
    with pytest.warns(PlacementWarning, match="no room for 1 large liver tumor"):
        out = synth(totalseg, "totalsegmentator", organ="liver", size="large", count=None, rng=3)
    assert len(out.records) == 2 and out.not_placed == {"liver large": 1}
    assert {r.tumor_index for r in out.records} == {0, 1} and (out.label == 2).any()
    # An asked-for count that cannot be met still fails, naming the organ and what was tried.
    with pytest.raises(PlacementError, match="no room left in the liver.*also tried at the organ"):
        synth(totalseg, "totalsegmentator", organ="liver", size="large", count=4, rng=0)
    # A count that fits is kept as asked, without a warning (IRCAD 1.7 seed 0 failed before).
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlacementWarning)
        assert len(synth(p07, IRCAD_MAP, organ="liver", size="large", count=2, rng=0).records) == 2
