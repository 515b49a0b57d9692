"""The parts of benchmarks/scaling_shared.py that benchmarks/gpu_scale.sh relies on: the study data
cut from prepare_gpu_data.py's crop of IRCAD 1.17 at the places of the full-scan cut, and the time
budget that starts no arm past it (the GPU run has minutes, not hours)."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
from tiny import load_benchmark

from tumorsynth.io import load_image, load_label
from tumorsynth.io.nifti import Volume, save_volume

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # scaling_shared imports prepare_gpu_data
    return load_benchmark("prepare_gpu_data"), load_benchmark("scaling_shared")


def full_scan(folder: Path) -> tuple[Volume, Volume]:
    """A 40 x 30 x 20 'IRCAD 1.17' in the shared data's layout: a CT of HU-like values that change
    from voxel to voxel, a liver with two tumors apart along x; an LPS-like affine, offset."""
    ct = (np.arange(40 * 30 * 20) % 1301 - 1000).astype(np.int16).reshape(40, 30, 20)
    seg = np.zeros_like(ct, dtype=np.uint8)
    seg[6:34, 5:25, 3:18] = 1
    seg[10:16, 10:15, 8:12] = 2
    seg[24:30, 12:18, 10:14] = 2
    affine = np.diag([-0.7, -0.7, 1.6, 1.0])
    affine[:3, 3] = [120.0, 90.0, -300.0]
    case = folder / "ircadb01_p17"
    save_volume(Volume(ct, affine), case / "ircadb01_p17_ct.nii.gz")
    save_volume(Volume(seg, affine), case / "ircadb01_p17_label.nii.gz")
    return load_image(case / "ircadb01_p17_ct.nii.gz"), load_label(
        case / "ircadb01_p17_label.nii.gz"
    )


def test_the_study_cut_from_the_gpu_crop_is_the_full_scan_cut_within_the_crop(
    tmp_path, monkeypatch
):
    prepare_gpu_data, scaling_shared = scripts(monkeypatch)
    monkeypatch.setattr(scaling_shared, "X_SPLIT", 20)  # between the tumors (x 10-16, 24-30)
    monkeypatch.setattr(scaling_shared, "Z_SPLIT", 11)
    ct, seg = full_scan(tmp_path / "shared")
    gpu = tmp_path / "gpu"
    box = prepare_gpu_data.crop_case(
        ct, seg, [1, 2], 2.0, gpu / "test/p17_0000.nii.gz", gpu / "test_labels/p17.nii.gz"
    )
    start = [b.start for b in box]
    assert start == [4, 3, 2]  # the liver's box less 2 mm: 2 voxels in-plane, 1 slice
    (gpu / "p17_crop.json").write_text(json.dumps({"start_voxel": start}))

    full = scaling_shared.prepare(tmp_path / "shared", tmp_path / "full")
    cropped = scaling_shared.prepare(tmp_path / "nowhere", tmp_path / "cropped", gpu)
    cuts = {
        ("test", "imagesTs", "p17left"): (slice(4, 20), slice(3, 27), slice(2, 19)),
        ("Dataset010_P17Right", "imagesTr", "p17right_lower"): (
            slice(20, 36),
            slice(3, 27),
            slice(2, 11),
        ),
        ("Dataset010_P17Right", "imagesTr", "p17right_upper"): (
            slice(20, 36),
            slice(3, 27),
            slice(11, 19),
        ),
    }
    assert [p.name for p in full] == [p.name for p in cropped] == ["test", "Dataset010_P17Right"]
    full_starts = {
        "p17left": (0, 0, 0),
        "p17right_lower": (20, 0, 0),
        "p17right_upper": (20, 0, 11),
    }
    for (folder, split, case), window in cuts.items():
        name = f"{folder}/{split}/{case}_0000.nii.gz"
        part = load_image(tmp_path / "cropped" / name)
        whole = load_image(tmp_path / "full" / name)
        labels = split.replace("images", "labels")
        part_label = load_label(tmp_path / "cropped" / folder / labels / f"{case}.nii.gz")
        # the voxels of the scan in the crop's window, at their place in the world ...
        np.testing.assert_array_equal(part.array, ct.array[window])
        np.testing.assert_array_equal(part_label.array, seg.array[window])
        origin = np.array([w.start for w in window], dtype=float)
        np.testing.assert_allclose(part.affine[:3, :3], ct.affine[:3, :3])
        np.testing.assert_allclose(
            part.affine[:3, 3], ct.affine[:3, :3] @ origin + ct.affine[:3, 3]
        )
        # ... which is the full-scan cut of the CPU study, less what lies outside the crop
        inside = tuple(
            slice(w.start - s, w.stop - s) for w, s in zip(window, full_starts[case], strict=True)
        )
        np.testing.assert_array_equal(part.array, whole.array[inside])


def test_a_study_under_a_budget_starts_no_arm_that_would_end_past_it(tmp_path, monkeypatch):
    _, scaling_shared = scripts(monkeypatch)
    clock = {"now": 0.0}
    studies: list[int] = []

    def fake_run_scaling(config):  # every arm not done yet takes 10 s
        studies.append(len(config.arms))
        clock["now"] += 10.0
        return Path(config.out_dir)

    @dataclasses.dataclass(frozen=True)
    class Study:
        out_dir: str
        arms: tuple[str, ...]

    monkeypatch.setattr(scaling_shared, "run_scaling", fake_run_scaling)
    monkeypatch.setattr(
        scaling_shared, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"])
    )
    study = Study(str(tmp_path), ("a", "b", "c", "d"))
    # after two arms (20 s, 10 s each) a third would end at 30 s > 25 s
    assert scaling_shared.run_within(study, 25.0) == (tmp_path, 2)
    assert studies == [1, 2]  # each run is the study of the arms so far: done ones are skipped
    studies.clear()
    clock["now"] = 0.0
    assert scaling_shared.run_within(study, 1000.0) == (tmp_path, 4)
    studies.clear()
    clock["now"] = 0.0
    assert scaling_shared.run_within(study, 1.0) == (tmp_path, 1)  # the first arm always runs
