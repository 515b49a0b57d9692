"""The ``tumorsynth`` command, driven through its real entry point.

Most calls go through :func:`tumorsynth.cli.main.main` in-process (fast; it returns the exit code),
a few through the installed console script in a subprocess. The phantom CT is written to NIfTI
once per module; bad-input files sit beside it, and every bad-input test checks the exit code,
the message, that no output is left behind and that the inputs are byte-for-byte unchanged.
"""

from __future__ import annotations

import errno
import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from cli_runner import Run, cli
from file_checks import file_hashes as hashes
from PIL import Image

import tumorsynth.pipelines.batch as batch_module
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.phantom import make_phantom

SCRIPT = Path(sys.executable).with_name("tumorsynth")
SHAPE = (128, 108, 64)
SPACING = (2.5, 2.5, 3.0)
CASE = "abdo"  # the single case: abdo_0000.nii.gz + abdo.nii.gz
MANIFEST_FIELDS = (
    "case_id",
    "organ",
    "generator",
    "seed",
    "center_mm",
    "radii_mm",
    "diameter_mm",
    "volume_ml",
    "tumor_label",
    "image_path",
    "label_path",
)


def script(*argv: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``tumorsynth ARGV`` through the installed console script."""
    assert SCRIPT.is_file(), f"console script not installed: {SCRIPT}"
    return subprocess.run(
        [str(SCRIPT), *map(str, argv)], capture_output=True, text=True, timeout=timeout, check=False
    )


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def nifti(path: Path) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj), img.affine, img.get_data_dtype()


# --- inputs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory, phantom: tuple[Volume, Volume]
) -> SimpleNamespace:
    """The phantom as NIfTI, plus one bad file per kind of bad input, all in one folder."""
    ct, seg = phantom
    assert ct.shape == SHAPE and ct.spacing_mm == SPACING
    folder = tmp_path_factory.mktemp("inputs")
    p = SimpleNamespace(
        dir=folder, ct=folder / f"{CASE}_0000.nii.gz", seg=folder / f"{CASE}.nii.gz"
    )
    save_volume(ct, p.ct)
    save_volume(seg, p.seg)

    data = p.ct.read_bytes()
    p.truncated = folder / "truncated_0000.nii.gz"
    p.truncated.write_bytes(data[: len(data) // 2])
    p.flat = folder / "flat_0000.nii.gz"
    nib.save(nib.Nifti1Image(np.full((64, 48), 40, np.int16), ct.affine), str(p.flat))
    p.seg_short = folder / "seg_short.nii.gz"
    save_volume(seg, p.seg_short, array=np.ascontiguousarray(seg.array[:, :, :60]))
    p.seg_shifted = folder / "seg_shifted.nii.gz"
    shifted = seg.affine.copy()
    shifted[0, 3] += 5.0
    save_volume(Volume(seg.array, shifted, seg.header.copy()), p.seg_shifted)
    p.seg_tiny = folder / "seg_tiny.nii.gz"  # only a 3-voxel-wide "pancreas" (id 3)
    tiny = np.zeros(SHAPE, np.uint8)
    tiny[60:63, 50:53, 30:33] = 3
    save_volume(seg, p.seg_tiny, array=tiny)
    p.nan_ct = folder / "nan_0000.nii.gz"
    with_nan = np.asarray(ct.array, dtype=np.float32).copy()
    with_nan[64, 54, 32] = np.nan
    save_volume(ct, p.nan_ct, array=with_nan)
    p.map_liver = folder / "map_liver.json"
    p.map_liver.write_text(json.dumps({"liver": 1}))
    p.map_spleen = folder / "map_spleen.json"
    p.map_spleen.write_text(json.dumps({"spleen": 7}))
    return p


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, phantom: tuple[Volume, Volume]) -> Path:
    """An nnU-Net v2 raw folder of two phantom cases drawn with different seeds."""
    root = tmp_path_factory.mktemp("datasets") / "Dataset501_Phantom"
    other = make_phantom(1, shape=SHAPE, spacing_mm=SPACING)
    for case_id, (ct, seg) in (("p0", phantom), ("p1", other)):
        save_volume(ct, root / "imagesTr" / f"{case_id}_0000.nii.gz")
        save_volume(seg, root / "labelsTr" / f"{case_id}.nii.gz")
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "liver": 1},
                "numTraining": 2,
                "file_ending": ".nii.gz",
            }
        )
    )
    return root


def synth_args(p: SimpleNamespace, out: Path, *extra: object) -> list[object]:
    return [
        "synthesize",
        "--image",
        p.ct,
        "--label",
        p.seg,
        "--label-map",
        "phantom",
        "--organ",
        "liver",
        "--out",
        out,
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def single(
    inputs: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Run, dict[str, str]]:
    """One case, two small liver tumors; also the input hashes taken before the run."""
    before = hashes(inputs.dir)
    out = tmp_path_factory.mktemp("single") / "out"
    run = cli(*synth_args(inputs, out, "--count", 2, "--size", "small", "--seed", 3))
    return out, run, before


DATASET_ARGS = (
    "--label-map",
    "phantom",
    "--organ",
    "liver",
    "--count",
    1,
    "--size",
    "small",
    "--per-case",
    2,
    "--no-progress",
)


@pytest.fixture(scope="module")
def dataset_run(
    dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Run, dict[str, str]]:
    """Both cases, two variants each, two worker processes; also the input hashes before."""
    before = hashes(dataset)
    out = tmp_path_factory.mktemp("dataset_run") / "out"
    run = cli("synthesize", "--dataset", dataset, "--out", out, "--workers", 2, *DATASET_ARGS)
    return out, run, before


# --- one case ----------------------------------------------------------------------------------


def test_synthesize_one_case_writes_the_nnunet_layout(single, inputs) -> None:
    out, run, before = single
    assert run.code == 0, run.err
    assert "2 tumors in 1 new case variants" in run.out
    assert tree(out) == [
        "dataset.json",
        "imagesTr",
        f"imagesTr/{CASE}_syn0_0000.nii.gz",
        "labelsTr",
        f"labelsTr/{CASE}_syn0.nii.gz",
        "manifest.jsonl",
        "run.json",
    ]
    assert hashes(inputs.dir) == before  # inputs are never modified


def test_manifest_records_name_the_tumors_and_their_files(single) -> None:
    out, run, _ = single
    records = manifest_lines(out)
    assert len(records) == 2  # --count 2
    for record in records:
        assert set(MANIFEST_FIELDS) <= set(record)
        assert (record["case_id"], record["organ"], record["generator"]) == (
            CASE,
            "liver",
            "heuristic",
        )
        assert record["tumor_label"] == 2
        assert record["image_path"] == f"imagesTr/{CASE}_syn0_0000.nii.gz"
        assert record["label_path"] == f"labelsTr/{CASE}_syn0.nii.gz"
        for key in ("image_path", "label_path"):
            assert not Path(record[key]).is_absolute() and (out / record[key]).is_file()
        assert len(record["center_mm"]) == 3 and len(record["radii_mm"]) == 3
        # the equivalent-sphere diameter and the volume describe the same tumor
        diameter = (6.0 * record["volume_ml"] * 1000.0 / np.pi) ** (1 / 3)
        assert record["diameter_mm"] == pytest.approx(diameter, rel=1e-3)
        assert record["volume_ml"] == pytest.approx(
            record["n_voxels"] * np.prod(SPACING) / 1000, abs=1e-4
        )
    assert len({r["seed"] for r in records}) == 2


def test_dataset_json_is_nnunet_v2(single) -> None:
    out, _, _ = single
    data = json.loads((out / "dataset.json").read_text())
    assert data["channel_names"] == {"0": "CT"}
    assert data["file_ending"] == ".nii.gz"
    assert data["numTraining"] == 1
    assert data["labels"]["background"] == 0
    assert data["labels"]["liver"] == 1 and data["labels"]["liver_tumor"] == 2
    assert sorted(data["labels"].values()) == list(range(len(data["labels"])))


def test_outputs_keep_the_grid_and_hold_the_recorded_tumors(single, inputs) -> None:
    out, _, _ = single
    records = manifest_lines(out)
    source, source_affine, _ = nifti(inputs.ct)
    image, affine, dtype = nifti(out / records[0]["image_path"])
    label, label_affine, _ = nifti(out / records[0]["label_path"])
    assert dtype == np.int16 and image.dtype == np.int16
    assert image.shape == label.shape == SHAPE
    np.testing.assert_allclose(affine, source_affine, atol=1e-6)
    np.testing.assert_allclose(label_affine, source_affine, atol=1e-6)

    tumor = label == records[0]["tumor_label"]
    assert tumor.sum() == sum(r["n_voxels"] for r in records) > 0
    source_seg, _, _ = nifti(inputs.seg)
    assert np.mean(source_seg[tumor] == 1) > 0.9  # liver tumors lie in the input's liver
    for record in records:
        centre = np.asarray(record["center_vox"])
        assert label[tuple(np.round(centre).astype(int))] == record["tumor_label"]
        np.testing.assert_allclose(
            affine[:3, :3] @ centre + affine[:3, 3], record["center_mm"], atol=2e-3
        )
        assert record["tumor_mean_hu"] < record["parenchyma_mean_hu"]  # hypodense
    assert image[tumor].mean() < source[tumor].mean()  # the tumors are darker than the liver was

    # untouched outside the tumors' neighbourhood
    changed = np.argwhere(image != source) * np.asarray(SPACING)
    centres = np.array([np.asarray(r["center_vox"]) * SPACING for r in records])
    nearest = np.linalg.norm(changed[:, None, :] - centres[None], axis=2).min(axis=1)
    assert len(changed) > 0
    assert nearest.max() < 3 * max(max(r["radii_mm"]) for r in records)


def test_config_file_gives_defaults_and_flags_win(inputs, tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("organ: liver\ncount: 3\nsize: tiny\nlabel-map: phantom\nseed: 11\n")
    out = tmp_path / "out"
    run = cli(
        "synthesize",
        "--config",
        config,
        "--image",
        inputs.ct,
        "--label",
        inputs.seg,
        "--count",
        1,
        "--out",
        out,
        "--no-progress",
    )
    assert run.code == 0, run.err
    records = manifest_lines(out)
    assert len(records) == 1  # the flag won over the file's count: 3
    assert records[0]["size_class"] == "tiny" and records[0]["organ"] == "liver"
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["requests"] == [{"organ": "liver", "count": 1, "size": "tiny"}]
    assert (settings["seed"], settings["label_map"]) == (11, "phantom")


@pytest.mark.parametrize(
    "text, found", [("colour: red\n", "'colour'"), ("- liver\n", "found list")]
)
def test_bad_config_file_is_named(inputs, tmp_path: Path, text: str, found: str) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text(text)
    run = cli(*synth_args(inputs, tmp_path / "out"), "--config", config)
    assert run.code == 2
    assert str(config) in run.err and found in run.err
    assert not (tmp_path / "out").exists()


def test_label_map_flag_takes_an_inline_mapping(inputs, tmp_path: Path) -> None:
    inline = '{"liver": 1, "pancreas": 3, "kidney": 5, "spleen": 7, "vessel": 8, "bone": 9}'
    out = tmp_path / "out"
    run = cli(*synth_args(inputs, out, "--count", 1, "--size", "tiny", "--label-map", inline))
    assert run.code == 0, run.err
    assert json.loads((out / "run.json").read_text())["settings"]["label_map"] == inline


def test_config_file_takes_an_inline_label_map(inputs, tmp_path: Path) -> None:
    """A label map written as a mapping in the option file works as a preset name does (it is
    passed on as JSON text, which ``--label-map`` also takes)."""
    config = tmp_path / "synth.yaml"
    config.write_text(
        "label-map: {liver: 1, pancreas: 3, kidney: 5, spleen: 7, vessel: 8, bone: 9}\n"
        "organ: liver\ncount: 1\nsize: tiny\n"
    )
    out = tmp_path / "out"
    run = cli(
        "synthesize", "--image", inputs.ct, "--label", inputs.seg, "--config", config, "--out", out
    )
    assert run.code == 0, run.err
    assert json.loads((out / "run.json").read_text())["settings"]["label_map"].startswith("{")
    assert len(manifest_lines(out)) == 1


# --- datasets, workers, resume -------------------------------------------------------------------


def test_dataset_with_workers_makes_every_variant(dataset_run, dataset) -> None:
    out, run, before = dataset_run
    assert run.code == 0, run.err
    assert hashes(dataset) == before
    records = manifest_lines(out)
    assert sorted((r["case_id"], r["variant"]) for r in records) == [
        ("p0", 0),
        ("p0", 1),
        ("p1", 0),
        ("p1", 1),
    ]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [
        "p0_syn0_0000.nii.gz",
        "p0_syn1_0000.nii.gz",
        "p1_syn0_0000.nii.gz",
        "p1_syn1_0000.nii.gz",
    ]
    assert len(list((out / "labelsTr").iterdir())) == 4
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 4
    first, second = (nifti(out / f"imagesTr/p0_syn{k}_0000.nii.gz")[0] for k in (0, 1))
    assert not np.array_equal(first, second)  # variants differ


def test_rerun_resumes_and_adds_nothing(dataset_run, dataset) -> None:
    out, _, _ = dataset_run
    before, inputs_before = hashes(out), hashes(dataset)
    run = cli("synthesize", "--dataset", dataset, "--out", out, "--workers", 2, *DATASET_ARGS)
    assert run.code == 0, run.err
    assert "0 tumors in 0 new case variants" in run.out and "4 already done" in run.out
    assert hashes(out) == before
    assert hashes(dataset) == inputs_before


def test_rerun_with_other_settings_is_refused(dataset_run, dataset) -> None:
    out, _, _ = dataset_run
    before = hashes(out)
    run = cli(
        "synthesize", "--dataset", dataset, "--out", out, "--workers", 2, *DATASET_ARGS, "--seed", 1
    )
    assert run.code == 2
    assert str(out / "run.json") in run.err and "other settings" in run.err
    assert hashes(out) == before


def test_worker_count_does_not_change_results(dataset_run, dataset, tmp_path: Path) -> None:
    out2, _, _ = dataset_run
    out1 = tmp_path / "out"
    run = cli("synthesize", "--dataset", dataset, "--out", out1, "--workers", 1, *DATASET_ARGS)
    assert run.code == 0, run.err

    def by_variant(out: Path) -> dict[tuple[str, int, int], dict]:
        return {(r["case_id"], r["variant"], r["tumor_index"]): r for r in manifest_lines(out)}

    assert by_variant(out1) == by_variant(out2)
    for name in ("p0_syn1_0000.nii.gz", "p1_syn0_0000.nii.gz"):
        np.testing.assert_array_equal(
            nifti(out1 / "imagesTr" / name)[0], nifti(out2 / "imagesTr" / name)[0]
        )


def test_interrupted_batch_resumes_without_duplicates(
    dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch_module.synthesize_case
    calls = []

    def interrupt_on_second_case(*args, **kwargs):
        calls.append(kwargs["case_id"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "out"
    args = (
        "synthesize",
        "--dataset",
        dataset,
        "--out",
        out,
        "--label-map",
        "phantom",
        "--count",
        1,
        "--size",
        "tiny",
        "--no-progress",
    )
    monkeypatch.setattr(batch_module, "synthesize_case", interrupt_on_second_case)
    run = cli(*args)
    assert run.code == 130 and "interrupted" in run.err
    kept = (out / "manifest.jsonl").read_text()
    assert [r["case_id"] for r in manifest_lines(out)] == ["p0"]

    monkeypatch.setattr(batch_module, "synthesize_case", real)
    run = cli(*args)
    assert run.code == 0, run.err
    assert "1 already done" in run.out
    assert (out / "manifest.jsonl").read_text().startswith(kept)  # finished case not redone
    keys = [(r["case_id"], r["variant"], r["tumor_index"]) for r in manifest_lines(out)]
    assert sorted(keys) == [("p0", 0, 0), ("p1", 0, 0)]


# --- replay, preview, demo -----------------------------------------------------------------------


def test_replay_reproduces_voxel_for_voxel(single, tmp_path: Path) -> None:
    out, _, _ = single
    replayed = tmp_path / "replayed"
    run = cli("replay", out / "manifest.jsonl", "--out", replayed, "--no-progress")
    assert run.code == 0, run.err
    original, again = manifest_lines(out), manifest_lines(replayed)
    assert len(again) == len(original) == 2
    for old, new in zip(original, again):
        for key in (
            "image_path",
            "label_path",
            "center_mm",
            "radii_mm",
            "n_voxels",
            "volume_ml",
            "tumor_mean_hu",
            "seed",
        ):
            assert new[key] == old[key], key
    for key in ("image_path", "label_path"):
        path = original[0][key]
        assert np.array_equal(nifti(replayed / path)[0], nifti(out / path)[0]), path
        # Header and voxels, byte for byte (gzip's own header holds a time stamp).
        assert gzip.decompress((replayed / path).read_bytes()) == gzip.decompress(
            (out / path).read_bytes()
        ), path
    assert (replayed / "dataset.json").is_file()


def test_replay_into_a_run_folder_is_refused(single) -> None:
    out, _, _ = single
    before = hashes(out)
    run = cli("replay", out / "manifest.jsonl", "--out", out, "--no-progress")
    assert run.code == 2
    assert str(out / "manifest.jsonl") in run.err and "exists already" in run.err
    assert hashes(out) == before


def _check_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        rgb = np.asarray(img.convert("RGB"))
    assert min(rgb.shape[:2]) >= 64
    packed = rgb.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    assert len(np.unique(packed)) > 50  # an image, not a blank
    assert np.all(rgb == [255, 0, 0], axis=-1).any()  # a red tumor contour


def test_preview_of_a_manifest_writes_pngs(single, tmp_path: Path) -> None:
    out, _, _ = single
    run = cli("preview", out / "manifest.jsonl", "--out", tmp_path / "previews")
    assert run.code == 0, run.err
    written = [Path(line) for line in run.out.split()]
    assert written == [tmp_path / "previews" / f"{CASE}_syn0.png"]
    _check_png(written[0])


def test_preview_of_a_labelled_scan(single, tmp_path: Path) -> None:
    out, _, _ = single
    run = cli(
        "preview",
        "--image",
        out / f"imagesTr/{CASE}_syn0_0000.nii.gz",
        "--label",
        out / f"labelsTr/{CASE}_syn0.nii.gz",
        "--out",
        tmp_path,
    )
    assert run.code == 0, run.err
    written = [Path(line) for line in run.out.split()]
    assert len(written) == 1 and written[0].parent == tmp_path
    _check_png(written[0])


def test_demo_runs_on_the_phantom(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = cli("demo", "--out", out, "--no-progress")
    assert run.code == 0, run.err
    assert "PHANTOM" in run.out
    records = manifest_lines(out)
    assert f"{len(records)} tumors in" in run.out
    assert {r["organ"] for r in records} == {
        "liver",
        "pancreas",
        "kidney",
        "colon",
        "esophagus",
        "uterus",
    }
    previews = [
        Path(line.split("preview: ", 1)[1]) for line in run.out.splitlines() if "preview: " in line
    ]
    assert len(previews) == 2
    for path in previews:
        _check_png(path)
    image, _, dtype = nifti(out / "imagesTr" / "phantom_syn0_0000.nii.gz")
    label, _, _ = nifti(out / "labelsTr" / "phantom_syn0.nii.gz")
    assert dtype == np.int16 and image.shape == label.shape
    assert set(np.unique(label)) >= {2, 4, 6, 8, 10, 12}  # a tumor in each of the six organs


def test_no_command_prints_help_and_version_is_known() -> None:
    run = cli()
    assert run.code == 0 and "synthesize" in run.out and "COMMAND" in run.out
    run = cli("--version")
    assert run.code == 0 and run.out.startswith("tumorsynth ")


# --- the console script --------------------------------------------------------------------------


def test_console_script_help_answers() -> None:
    done = script("--help", timeout=30)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in ("synthesize", "replay", "preview", "demo"))


def test_help_imports_no_heavy_dependency() -> None:
    # Start-up time is a benchmark (benchmarks/bench_synthesis.py); what keeps it short is that
    # building the parser imports none of numpy, scipy, nibabel, torch or monai.
    code = (
        "import sys; from tumorsynth.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('numpy', 'scipy', 'nibabel', 'torch', 'monai') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_console_script_synthesizes(inputs, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = script(
        "synthesize",
        "--image",
        inputs.ct,
        "--label",
        inputs.seg,
        "--label-map",
        "phantom",
        "--organ",
        "kidney",
        "--count",
        1,
        "--size",
        "tiny",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    assert "1 tumors in 1 new case variants" in done.stdout
    records = manifest_lines(out)
    assert [(r["organ"], r["tumor_label"]) for r in records] == [("kidney", 6)]
    label = nifti(out / records[0]["label_path"])[0]
    assert (label == 6).sum() == records[0]["n_voxels"]


def test_console_script_bad_input_exits_2_without_traceback(inputs, tmp_path: Path) -> None:
    missing = inputs.dir / "absent_0000.nii.gz"
    done = script(
        "synthesize", "--image", missing, "--label", inputs.seg, "--out", tmp_path / "out"
    )
    assert done.returncode == 2
    assert str(missing) in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


# --- bad input ----------------------------------------------------------------------------------

P = SimpleNamespace
Expected = list[str | tuple[str, ...]]  # texts stderr must hold; a tuple: any one of them

#: case -> (flags that make the input bad, given after good defaults; what stderr must say)
BAD_INPUT: dict[str, tuple[Callable[[P], list[object]], Callable[[P], Expected]]] = {
    "missing image": (
        lambda p: ["--image", p.dir / "absent_0000.nii.gz"],
        lambda p: [str(p.dir / "absent_0000.nii.gz"), "does not exist"],
    ),
    "missing label": (
        lambda p: ["--label", p.dir / "absent.nii.gz"],
        lambda p: [str(p.dir / "absent.nii.gz"), "does not exist"],
    ),
    "truncated image": (
        lambda p: ["--image", p.truncated],
        lambda p: [str(p.truncated), "expected a complete", "truncated"],
    ),
    "2-D image": (
        lambda p: ["--image", p.flat],
        lambda p: [str(p.flat), "expected a 3-D image", "(64, 48)"],
    ),
    "shape mismatch": (
        lambda p: ["--label", p.seg_short],
        lambda p: [str(p.seg_short), "(128, 108, 60)", "(128, 108, 64)"],
    ),
    "affine mismatch": (
        lambda p: ["--label", p.seg_shifted],
        lambda p: [str(p.seg_shifted), str(p.ct), "affine", "5 mm"],
    ),
    "image given as label": (
        lambda p: ["--label", p.ct],
        lambda p: [str(p.ct), "are the same file"],
    ),
    "organ absent": (
        lambda p: ["--label", p.seg_tiny, "--label-map", p.map_liver],
        lambda p: [(str(p.seg_tiny), str(p.ct)), "'liver'", "absent", "map_liver.json", "ids [3]"],
    ),
    "organ too small": (
        lambda p: ["--label", p.seg_tiny, "--organ", "pancreas", "--size", "large"],
        lambda p: [
            (str(p.seg_tiny), str(p.ct)),
            "pancreas is too small for a large tumor",
            "smaller --size",
        ],
    ),
    "map lacks organ": (
        lambda p: ["--label-map", p.map_spleen],
        lambda p: ["map_spleen.json", "no organ 'liver'", "spleen"],
    ),
    "label map neither preset nor file": (
        lambda p: ["--label-map", "liver=1"],
        lambda p: ["--label-map", "expected a preset", "totalsegmentator", "JSON file"],
    ),
    "NaN voxels": (
        lambda p: ["--image", p.nan_ct],
        lambda p: [str(p.nan_ct), "finite", "1 NaN/Inf voxels"],
    ),
    "unknown organ": (
        lambda p: ["--organ", "liver,brain"],
        lambda p: ["--organ", "'liver,brain'", "kidney, liver, pancreas"],
    ),
    "no organ": (lambda p: ["--organ", " , "], lambda p: ["--organ", "expected one or more"]),
    "unknown size": (
        lambda p: ["--size", "huge"],
        lambda p: ["--size", "invalid choice", "'huge'", "small"],
    ),
    "zero per-case": (lambda p: ["--per-case", 0], lambda p: ["--per-case", "expected >= 1"]),
}


@pytest.mark.parametrize("out_state", ["new", "existing"])
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_names_it_and_leaves_no_trace(
    inputs, tmp_path: Path, case: str, out_state: str
) -> None:
    make_args, expected = BAD_INPUT[case]
    out = tmp_path / "out"
    if out_state == "existing":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before_inputs, before_out = hashes(inputs.dir), (tree(out) if out.exists() else None)
    # defaults first; the case's flags come later and win
    run = cli(*synth_args(inputs, out, "--count", 1), *make_args(inputs))
    assert run.code == 2, (run.out, run.err)
    assert "error:" in run.err and "Traceback" not in run.err
    for text in expected(inputs):
        choices = text if isinstance(text, tuple) else (text,)
        assert any(t in run.err for t in choices), f"{text!r} not in {run.err!r}"
    if out_state == "new":
        assert not out.exists(), tree(out)
    else:
        assert tree(out) == before_out
        assert (out / "keep.txt").read_text() == "mine"
    assert hashes(inputs.dir) == before_inputs


def test_output_folder_not_writable(inputs, locked_dir: Path) -> None:
    for out in (locked_dir / "out", locked_dir):
        run = cli(*synth_args(inputs, out, "--count", 1))
        assert run.code == 2
        assert str(out) in run.err and "not writable" in run.err
    assert tree(locked_dir) == []


def test_output_path_through_a_file_is_refused(inputs, tmp_path: Path) -> None:
    """Unwritable even for root: a component of --out is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    before = hashes(inputs.dir)
    run = cli(*synth_args(inputs, blocker / "out", "--count", 1))
    assert run.code == 2
    assert str(blocker / "out") in run.err and "cannot write" in run.err
    assert blocker.read_text() == "a file"
    assert hashes(inputs.dir) == before


def test_command_without_out_or_input_is_refused(inputs, tmp_path: Path) -> None:
    run = cli("synthesize", "--image", inputs.ct, "--label", inputs.seg)
    assert run.code == 2 and "--out" in run.err
    run = cli("synthesize", "--out", tmp_path / "out")
    assert run.code == 2 and "--image/--dataset" in run.err
    run = cli("replay", "--out", tmp_path / "out")
    assert run.code == 2 and "MANIFEST" in run.err
    assert not (tmp_path / "out").exists()


def test_replay_of_a_missing_manifest_is_refused(tmp_path: Path) -> None:
    run = cli("replay", tmp_path / "manifest.jsonl", "--out", tmp_path / "out")
    assert run.code == 2
    assert str(tmp_path / "manifest.jsonl") in run.err and "does not exist" in run.err
    assert not (tmp_path / "out").exists()


# --- known bugs outside cli/ and io/ (kept strict: they start failing when fixed) ----------------


def test_failed_run_leaves_no_parent_folders(inputs, tmp_path: Path) -> None:
    run = cli(*synth_args(inputs, tmp_path / "a" / "b" / "out"), "--image", inputs.truncated)
    assert run.code == 2
    assert not (tmp_path / "a").exists()


def test_disk_full_leaves_no_partial_variant(
    inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = nib.save
    calls = []

    def full_on_second_file(img: nib.Nifti1Image, filename: str) -> None:
        calls.append(filename)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        real(img, filename)

    monkeypatch.setattr(nib, "save", full_on_second_file)
    out = tmp_path / "out"
    run = cli(*synth_args(inputs, out, "--count", 1))
    assert run.code == 2 and "disk full" in run.err
    assert not out.exists(), tree(out)


def test_replay_with_missing_sources_leaves_no_output(single, tmp_path: Path) -> None:
    out, _, _ = single
    manifest = tmp_path / "manifest.jsonl"
    records = manifest_lines(out)
    for record in records:
        record["source_image"] = str(tmp_path / "moved_away.nii.gz")
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    for folder in ("imagesTr", "labelsTr"):
        shutil.copytree(out / folder, tmp_path / folder)
    run = cli("replay", manifest, "--out", tmp_path / "replayed", "--no-progress")
    assert run.code == 2 and "moved_away.nii.gz" in run.err
    assert not (tmp_path / "replayed").exists()


def test_count_zero_is_refused_before_any_output(inputs, tmp_path: Path) -> None:
    # A variant without tumors would have no record in the manifest, so a resumed run could not
    # tell it was done: --count must be at least 1.
    run = cli(*synth_args(inputs, tmp_path / "out", "--count", 0))
    assert run.code == 2 and "--count" in run.err and "found 0" in run.err, run.err
    assert not (tmp_path / "out").exists()
