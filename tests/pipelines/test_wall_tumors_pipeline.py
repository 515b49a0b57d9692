"""Wall tumors through the synthesis pipeline: on the shared TotalSegmentator example's colon and
on the phantom's colon and esophagus, the tumor lies in its organ (plus the outgrowth), the air
it covered became tissue, air is left in the narrowed lumen, the record is what a reader of the
manifest needs, and replaying the JSON record gives the same voxels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from tumorsynth.io.records import TumorRecord
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines import replay_case, synthesize_case

AIR_HU = -500.0
#: Output ids of the new organs and their tumors.
COLON, COLON_TUMOR, ESOPHAGUS, ESOPHAGUS_TUMOR = 7, 8, 9, 10


def synth_and_replay(ct, seg, label_map, organ, size, seed):
    kw = {"spacing_mm": ct.spacing_mm, "label_map": label_map, "affine": ct.affine}
    out = synthesize_case(ct.array, seg.array, organ=organ, count=1, size=size, rng=seed, **kw)
    records = [TumorRecord.from_dict(json.loads(r.to_json())) for r in out.records]
    again = replay_case(ct.array, seg.array, records, **kw)
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)
    return out


def check_wall_tumor(ct, organ_mask, out, tumor_id, organ_id):
    tumor = out.label == tumor_id
    (record,) = out.records
    assert tumor.any() and record.shape["wall"] is not None
    # in its organ, or within the outgrowth of it (a voxel of slack for the box dilation)
    reach = record.shape["bulge_mm"] + max(ct.spacing_mm)
    iterations = max(1, int(np.ceil(reach / min(ct.spacing_mm))))
    assert not (tumor & ~ndi.binary_dilation(organ_mask, iterations=iterations)).any()
    # the lumen it covered is tissue now: no air inside the tumor label
    was_air = ct.array < AIR_HU
    assert (tumor & was_air).any()
    assert not (tumor & (out.image < AIR_HU)).any()
    # the organ's label elsewhere is unchanged; the record names the wall organ and its tissue HU
    assert np.array_equal(out.label == organ_id, organ_mask & ~tumor)
    assert record.tumor_mean_hu > 0 and record.parenchyma_mean_hu > 0
    return tumor, record


@pytest.mark.parametrize("size,seed", [("small", 0), ("large", 1)])
def test_colon_of_the_totalsegmentator_example(totalseg, size, seed):
    ct, seg = totalseg
    colon = seg.array == 20
    out = synth_and_replay(ct, seg, "totalsegmentator", "colon", size, seed)
    tumor, record = check_wall_tumor(ct, colon, out, COLON_TUMOR, COLON)
    # air is left in the colon (the lumen narrowed, it did not vanish)
    assert ((out.image < AIR_HU) & colon & ~tumor).sum() > 0.5 * (
        (ct.array < AIR_HU) & colon & ~ndi.binary_dilation(tumor, iterations=2)
    ).sum()
    wall = record.shape["wall"]
    assert wall["thickness_mm"] > 0 and wall["length_mm"] > 0
    # early stage of a wall tumor is its class (T1-T2 plaques), not the 2 cm diameter rule
    assert record.early_stage == (size in ("tiny", "small"))


def test_phantom_colon_and_esophagus():
    """The phantom's colon (air and fluid inside) and its thin esophagus (mostly collapsed: its
    tumors need not meet air)."""
    ct, seg = make_phantom(2)
    colon = synth_and_replay(ct, seg, "phantom", "colon", "medium", 5)
    check_wall_tumor(ct, seg.array == 10, colon, COLON_TUMOR, COLON)
    esophagus = synth_and_replay(ct, seg, "phantom", "esophagus", "tiny", 5)
    tumor = esophagus.label == ESOPHAGUS_TUMOR
    assert tumor.any() and not (tumor & (esophagus.image < AIR_HU)).any()
    reach = esophagus.records[0].shape["bulge_mm"] + max(ct.spacing_mm)
    grown = ndi.binary_dilation(seg.array == 11, iterations=int(np.ceil(reach / 2.0)))
    assert not (tumor & ~grown).any()
