"""Property tests of the synthesis pipeline on the phantom: identity, effect, direction,
determinism, replay, preserved shape/dtype, untouched far voxels, inputs never modified."""

import json

import numpy as np
import pytest
from tiny import far_from

from tumorsynth.errors import InputError, PlacementError
from tumorsynth.io.label_maps import OUTPUT_LABELS, to_output_labels
from tumorsynth.io.records import TumorRecord
from tumorsynth.pipelines import TumorRequest, replay_case, synthesize_case

LIVER_TUMOR = OUTPUT_LABELS.id_of("liver_tumor")


def run(phantom, label_map_override=None, **kw):
    ct, seg = phantom
    if "requests" not in kw:
        kw.setdefault("organ", "liver")
    kw.setdefault("rng", 0)
    return synthesize_case(
        ct.array,
        seg.array,
        spacing_mm=ct.spacing_mm,
        label_map=label_map_override or "phantom",
        affine=ct.affine,
        **kw,
    )


def test_identity_nothing_requested_nothing_changed(phantom):
    ct, seg = phantom
    out = run(phantom, count=0)
    assert out.records == []
    assert np.array_equal(out.image, ct.array)
    assert np.array_equal(out.label, to_output_labels(seg.array, _phantom_map(), OUTPUT_LABELS))


def test_effect_tumors_labelled_darker_inside_the_liver(phantom):
    ct, seg = phantom
    out = run(phantom, count=3, size="small")
    assert len(out.records) == 3
    tumor = out.label == LIVER_TUMOR
    assert tumor.sum() == sum(r.n_voxels for r in out.records)
    liver_ids = _phantom_map().organ_ids("liver")
    assert np.isin(seg.array[tumor], liver_ids).mean() > 0.9
    for r in out.records:
        assert r.contrast_hu < -5
        assert r.tumor_mean_hu < r.parenchyma_mean_hu


def test_direction_larger_class_larger_tumors(phantom):
    vols = {
        size: np.mean([r.volume_ml for r in run(phantom, count=2, size=size, rng=4).records])
        for size in ("tiny", "small", "medium")
    }
    assert vols["tiny"] < vols["small"] < vols["medium"]
    for r in run(phantom, count=2, size="small", rng=4).records:
        assert 10.0 < r.diameter_mm < 25.0


def test_same_seed_same_voxels_other_seed_other_voxels(phantom):
    a = run(phantom, count=2, size="small", rng=11)
    b = run(phantom, count=2, size="small", rng=11)
    c = run(phantom, count=2, size="small", rng=12)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert [r.to_dict() for r in a.records] == [r.to_dict() for r in b.records]
    assert not np.array_equal(a.image, c.image)


def test_replay_from_json_records_is_voxel_exact(phantom):
    ct, seg = phantom
    out = run(
        phantom,
        requests=[
            TumorRequest("liver", 2, "medium"),
            TumorRequest("kidney", 1, "small"),
            TumorRequest("pancreas", 1, "tiny"),
        ],
        rng=5,
    )
    records = [TumorRecord.from_dict(json.loads(r.to_json())) for r in out.records]
    again = replay_case(
        ct.array,
        seg.array,
        records,
        spacing_mm=ct.spacing_mm,
        label_map="phantom",
        affine=ct.affine,
    )
    assert np.array_equal(again.image, out.image)
    assert np.array_equal(again.label, out.label)
    assert [r.volume_ml for r in again.records] == [r.volume_ml for r in out.records]


def test_shape_dtype_kept_and_voxels_far_from_tumors_untouched(phantom):
    ct, seg = phantom
    out = run(
        phantom,
        requests=[TumorRequest("liver", 2, "large"), TumorRequest("kidney", 1, "medium")],
        rng=2,
    )
    assert out.image.shape == ct.array.shape and out.image.dtype == ct.array.dtype
    assert out.label.dtype == np.uint8
    tumors = np.isin(out.label, [2, 4, 6])
    # Beyond the mass-effect reach (1.6 radii) plus edge margins nothing may change.
    reach = max(1.6 * max(r.radii_mm) + 10 for r in out.records)
    far = far_from(tumors, ct.spacing_mm, reach)
    assert np.array_equal(out.image[far], ct.array[far])
    changed = out.image != ct.array
    assert changed.any() and not changed[far].any()


def test_inputs_are_never_modified(phantom):
    ct, seg = phantom  # the fixture's arrays are read-only: any write would raise
    run(phantom, count=2, size="medium")
    assert not ct.array.flags.writeable


def test_tumors_do_not_overlap_and_records_are_complete(phantom):
    out = run(phantom, count=6, size="small", rng=3)
    centers = np.array([r.center_vox for r in out.records]) * np.array(phantom[0].spacing_mm)
    for i in range(len(centers)):
        for j in range(i + 1, len(centers)):
            assert np.linalg.norm(centers[i] - centers[j]) > 2 * 7.5  # both at least 6 mm radius
    for r in out.records:
        d = r.to_dict()
        for key in (
            "case_id",
            "organ",
            "generator",
            "seed",
            "center_mm",
            "radii_mm",
            "diameter_mm",
            "volume_ml",
            "tumor_label",
            "tumor_mean_hu",
            "parenchyma_mean_hu",
            "generator_version",
        ):
            assert d[key] is not None
        assert r.early_stage == (r.diameter_mm < 20)
        world = phantom[0].affine @ np.append(r.center_vox, 1.0)
        assert np.allclose(world[:3], r.center_mm, atol=1e-3)


def test_largest_tumors_are_placed_first(phantom):
    out = run(
        phantom,
        requests=[TumorRequest("liver", 2, "tiny"), TumorRequest("liver", 1, "large")],
        rng=1,
    )
    assert [r.size_class for r in out.records] == ["large", "tiny", "tiny"]


def test_mixed_sizes_draw_several_classes(phantom):
    sizes = {
        r.size_class
        for seed in range(4)
        for r in run(phantom, count=4, size="mixed", rng=seed).records
    }
    assert len(sizes) >= 3


def test_organ_absent_names_ids_found(phantom):
    with pytest.raises(PlacementError, match="absent"):
        run(phantom, label_map_override={"liver": 42})


def test_organ_too_small_for_the_size(phantom):
    with pytest.raises(PlacementError, match="too small|room|fit"):
        run(phantom, organ="pancreas", count=10, size="large")


def test_bad_arguments_are_refused(phantom):
    with pytest.raises(InputError, match="size"):
        TumorRequest("liver", 1, "huge")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="count"):
        TumorRequest("liver", -1)
    ct, seg = phantom
    with pytest.raises(InputError, match="does not match"):
        synthesize_case(
            ct.array,
            seg.array[:, :, :10],
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            organ="liver",
        )


def _phantom_map():
    from tumorsynth.io.label_maps import resolve_label_map

    return resolve_label_map("phantom")
