"""synthesize_case(exclude_labels=..., exclude_margin_mm=...): synthetic tumors keep a margin from
lesions already in the scan and leave their voxels unchanged (host-matched synthesis)."""

import json
import warnings

import edt
import numpy as np
import pytest

from tumorsynth.errors import InputError
from tumorsynth.io.records import TumorRecord
from tumorsynth.pipelines import replay_case, synthesize_case
from tumorsynth.pipelines.synthesize import check_exclusion

CYST = 20  # an id the phantom's label map does not know: a lesion of any kind


@pytest.fixture(scope="module")
def lesion_phantom(phantom):
    """The phantom with a lesion of up to 40 x 40 x 30 mm in the middle of its liver (id 20)."""
    ct, seg = phantom
    label = seg.array.copy()
    lesion = np.zeros(label.shape, bool)
    lesion[68:84, 47:63, 36:46] = True
    lesion &= np.isin(label, (1, 8))  # liver and its vessels
    assert lesion.sum() > 2000
    label[lesion] = CYST
    return ct, label, lesion


def synth(case, **kw):
    ct, label, _ = case
    kw.setdefault("organ", "liver")
    return synthesize_case(
        ct.array, label, spacing_mm=ct.spacing_mm, label_map="phantom", affine=ct.affine, **kw
    )


def distance_to(mask, spacing):
    """Distance (mm) of every voxel to the nearest voxel of ``mask``."""
    return edt.edt(~mask, anisotropy=spacing, black_border=False)


@pytest.mark.parametrize(("size", "count", "margin"), [("small", 4, 8.0), ("medium", 2, 4.0)])
def test_tumors_keep_the_margin_and_the_lesion_is_untouched(lesion_phantom, size, count, margin):
    ct, label, lesion = lesion_phantom
    distance = distance_to(lesion, ct.spacing_mm)
    for seed in range(3):
        out = synth(
            lesion_phantom,
            count=count,
            size=size,
            rng=seed,
            exclude_labels=[CYST],
            exclude_margin_mm=margin,
        )
        tumor = out.label == 2
        assert len(out.records) == count and tumor.any()
        assert distance[tumor].min() >= margin
        # Medium tumors push tissue aside (mass effect): never the lesion's.
        assert np.array_equal(out.image[lesion], ct.array[lesion])
        assert (out.label[lesion] == 0).all()  # id 20 is not in the map: background, as before
        for record in out.records:
            assert record.extra["excluded"] == {"labels": [CYST], "margin_mm": margin}


def test_without_exclusion_tumors_come_closer(lesion_phantom):
    """The margin is the exclusion's doing: the same requests without it come nearer."""
    ct, _, lesion = lesion_phantom
    distance = distance_to(lesion, ct.spacing_mm)
    closest = min(
        distance[synth(lesion_phantom, count=4, size="small", rng=seed).label == 2].min()
        for seed in range(3)
    )
    assert closest < 8.0


def test_excluded_records_replay_exactly(lesion_phantom):
    ct, label, _ = lesion_phantom
    out = synth(
        lesion_phantom, count=2, size="medium", rng=1, exclude_labels=[CYST], exclude_margin_mm=4
    )
    records = [TumorRecord.from_dict(json.loads(r.to_json())) for r in out.records]
    again = replay_case(
        ct.array, label, records, spacing_mm=ct.spacing_mm, label_map="phantom", affine=ct.affine
    )
    assert np.array_equal(again.image, out.image) and np.array_equal(again.label, out.label)


def test_no_exclusion_changes_nothing(lesion_phantom):
    plain = synth(lesion_phantom, count=3, size="small", rng=4)
    empty = synth(lesion_phantom, count=3, size="small", rng=4, exclude_labels=())
    assert np.array_equal(plain.image, empty.image)
    assert [r.to_json() for r in plain.records] == [r.to_json() for r in empty.records]


@pytest.mark.parametrize(
    ("ids", "margin", "match"),
    [
        ([CYST], -1.0, "exclude_margin_mm: expected a margin >= 0 mm, found -1.0"),
        ([CYST], float("nan"), "expected a margin >= 0 mm"),
        ([], 5.0, "a margin of 5 mm was given without label ids"),
        ([0], 0.0, r"expected label ids >= 1 \(0 is the background\), found \[0\]"),
        ([2.5], 0.0, r"found \[2.5\]"),
    ],
)
def test_bad_exclusion_is_refused(ids, margin, match):
    with pytest.raises(InputError, match=match):
        check_exclusion(ids, margin)


def test_excluding_the_organ_itself_is_refused(lesion_phantom):
    with pytest.raises(InputError, match=r"excluded label id\(s\) \[1\] are the liver itself"):
        synth(lesion_phantom, count=1, exclude_labels=[1, CYST], exclude_margin_mm=2.0)


def test_an_absent_id_warns_and_excludes_nothing(lesion_phantom):
    with pytest.warns(UserWarning, match=r"excluded label id\(s\) \[42\] are not in this label"):
        out = synth(lesion_phantom, count=2, rng=3, exclude_labels=[42, CYST])
    assert len(out.records) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synth(lesion_phantom, count=2, rng=3, exclude_labels=[CYST])
