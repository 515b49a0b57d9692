"""``run_demo``: tumors in six organs of the phantom (liver, pancreas, kidney, colon, esophagus,
uterus), wall tumors inside their tube, previews along the tube; on a real scan, only the organs
its label holds (enough of them, for a tube)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from tumorsynth.errors import InputError
from tumorsynth.io import load_image, load_label
from tumorsynth.io.label_maps import OUTPUT_LABELS, resolve_label_map
from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.demo import PHANTOM_REQUESTS, run_demo

SIX = {"liver", "pancreas", "kidney", "colon", "esophagus", "uterus"}
TILE = 256  # the demo montage's tile
RED = np.array([255, 0, 0])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run_demo(out, seed=0, progress=False)
    name = "phantom_syn0"
    return (
        result,
        load_image(out / "phantom" / "phantom_ct.nii.gz"),
        load_label(out / "phantom" / "phantom_label.nii.gz"),
        load_image(out / "imagesTr" / f"{name}_0000.nii.gz"),
        load_label(out / "labelsTr" / f"{name}.nii.gz"),
    )


def test_demo_puts_tumors_into_six_organs(demo) -> None:
    result, _, _, _, made_label = demo
    assert {r.organ for r in result.records} == SIX == {q.organ for q in PHANTOM_REQUESTS}
    assert len(result.records) == sum(q.count for q in PHANTOM_REQUESTS)
    tumor_ids = {OUTPUT_LABELS.id_of(f"{organ}_tumor") for organ in SIX}
    assert tumor_ids == {2, 4, 6, 8, 10, 12}
    assert set(np.unique(made_label.array).tolist()) >= tumor_ids
    for record in result.records:
        assert record.tumor_label == OUTPUT_LABELS.id_of(f"{record.organ}_tumor")
        assert (record.shape.get("wall") is not None) == (record.organ in ("colon", "esophagus"))


@pytest.mark.parametrize("organ", ["colon", "esophagus"])
def test_wall_tumors_lie_in_their_tube_and_leave_no_air(demo, organ: str) -> None:
    result, ct, phantom_label, made, made_label = demo
    (record,) = [r for r in result.records if r.organ == organ]
    organ_id = resolve_label_map("phantom").organ_ids(organ)[0]
    tumor = made_label.array == OUTPUT_LABELS.id_of(f"{organ}_tumor")
    assert tumor.sum() == record.n_voxels > 50
    # In the organ's mask, or within the outgrowth (plus a voxel) around it.
    outside_mm = ndi.distance_transform_edt(phantom_label.array != organ_id, sampling=ct.spacing_mm)
    outgrowth = float(record.shape["wall"]["outgrowth_mm"])
    assert outside_mm[tumor].max() <= outgrowth + max(ct.spacing_mm)
    # Never the remaining lumen's air: every tumor voxel is tissue or a partial edge voxel.
    assert made.array[tumor].min() > -800


def test_colon_tumor_replaces_lumen_air_with_tissue(demo) -> None:
    result, ct, _, made, made_label = demo
    tumor = made_label.array == OUTPUT_LABELS.id_of("colon_tumor")
    was_air = tumor & (ct.array < -800)
    assert was_air.sum() > 100  # the thickening grew into the former lumen ...
    now = made.array[was_air]
    assert np.median(now) > -50 and np.mean(now > -200) > 0.8  # ... and filled it with tumor


def test_demo_montage_shows_wall_tumors_along_the_tube(demo) -> None:
    result = demo[0]
    montage_path, overview_path = result.previews
    assert montage_path.name == "phantom_syn0.png" and overview_path.is_file()
    with Image.open(montage_path) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape == (len(result.records) * TILE, 2 * TILE, 3)
    for row, record in enumerate(result.records):
        beside = rgb[row * TILE + TILE // 5 : (row + 1) * TILE, TILE:]  # below the row's title
        red = np.all(beside == RED, axis=-1).sum()
        assert red > 10, (record.organ, red)  # the tumor in the coronal tile / along the tube
        letters = np.all(beside[-TILE // 8 :] == (255, 255, 0), axis=-1).any()
        assert letters == (record.organ in ("colon", "esophagus"))  # the tube view's captions


def test_real_scan_asks_only_for_organs_it_holds(tmp_path) -> None:
    """A scan whose esophagus is a stub (its top two slices) and that has no uterus: tumors in
    the other organs only, no failure for the tube too short for a tumor."""
    ct, seg = make_phantom(1, shape=(128, 108, 64), spacing_mm=(2.5, 2.5, 3.0))
    label = seg.array.copy()
    label[label == 12] = 0  # no uterus
    esophagus = np.argwhere(label == 11)
    assert len(esophagus) > 0
    keep = esophagus[esophagus[:, 2] >= esophagus[:, 2].max() - 1]  # its top two slices
    label[label == 11] = 0
    label[tuple(keep.T)] = 11
    assert len(keep) * np.prod(seg.spacing_mm) / 1000 < 3.0
    image_path = save_volume(ct, tmp_path / "scan.nii.gz")
    label_path = save_volume(seg, tmp_path / "scan_label.nii.gz", array=label)
    result = run_demo(
        tmp_path / "out",
        image=str(image_path),
        label=str(label_path),
        label_map="phantom",
        progress=False,
    )
    assert {r.organ for r in result.records} == {"liver", "pancreas", "kidney", "colon"}
    assert not result.phantom and all(p.is_file() for p in result.previews)


def test_real_scan_with_only_a_stub_of_tube_is_refused_before_any_output(tmp_path) -> None:
    ct, seg = make_phantom(1, shape=(128, 108, 64), spacing_mm=(2.5, 2.5, 3.0))
    label = np.zeros_like(seg.array)
    label[60:62, 50:52, 60:62] = 11  # 8 voxels of esophagus, nothing else
    image_path = save_volume(ct, tmp_path / "scan.nii.gz")
    label_path = save_volume(seg, tmp_path / "scan_label.nii.gz", array=label)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="its esophagus: too little for a tumor"):
        run_demo(
            out, image=str(image_path), label=str(label_path), label_map="phantom", progress=False
        )
    assert not out.exists()
