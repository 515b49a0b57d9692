"""``tumorsynth realism`` end to end on phantoms: two seeds of one generator are not told apart,
a clearly different generator is, the report and figures are written, bad input is refused before
any work; and on IRCAD 1.17: its real tumors against synthetic ones in the same scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from shared_data import require_data

from tumorsynth.cli.main import main
from tumorsynth.errors import InputError
from tumorsynth.io import load_image, load_label
from tumorsynth.io.nifti import Volume, save_volume
from tumorsynth.io.records import read_manifest
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.realism import RealismSettings, run_realism
from tumorsynth.pipelines.realism_inputs import cases_from_sources
from tumorsynth.realism import FeatureSettings

# 19 permutations: the smallest null that can give p <= 0.05; 25 trees: a quarter of the cost.
FAST = RealismSettings(
    features=FeatureSettings(radiomics=False),
    n_repeats=2,
    n_permutations=19,
    n_trees=25,
    montage=4,
)


def run_cli(*argv: object) -> int:
    return main([str(a) for a in argv])


def synthesize(dataset, out, label_map, organ, size, count, per_case, seed, *extra) -> None:
    """``tumorsynth synthesize --dataset`` with these options; it must succeed."""
    code = run_cli(
        "synthesize", "--dataset", dataset, "--out", out, "--label-map", label_map,
        "--organ", organ, "--size", size, "--count", count, "--per-case", per_case,
        "--seed", seed, "--no-progress", *extra,
    )  # fmt: skip
    assert code == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Six phantom scans; 4 variants each with one medium liver tumor, for seeds 1 and 2; and a
    'flat' generator: seed 2's tumors replaced by their mean HU (no texture, no noise)."""
    root = tmp_path_factory.mktemp("realism")
    for i in range(6):
        ct, seg = make_phantom(i, shape=(96, 80, 48), spacing_mm=(2.0, 2.0, 2.5))
        save_volume(ct, root / "ds" / "imagesTr" / f"p{i}_0000.nii.gz")
        save_volume(seg, root / "ds" / "labelsTr" / f"p{i}.nii.gz")
    out = {}
    for seed in (1, 2):
        out[f"seed{seed}"] = root / f"seed{seed}"
        synthesize(root / "ds", out[f"seed{seed}"], "phantom", "liver", "medium", 1, 4, seed)
    flat = root / "flat"
    lines = []
    for record in read_manifest(out["seed2"] / "manifest.jsonl"):
        image = load_image(out["seed2"] / record.image_path)
        label = load_label(out["seed2"] / record.label_path)
        tumor = label.array == 2
        array = image.array.astype(np.float32)
        array[tumor] = float(array[tumor].mean())
        name = Path(record.image_path).name.replace("_0000", "")
        save_volume(Volume(array, image.affine), flat / "images" / name)
        save_volume(label, flat / "labels" / name)
        group = record.source_image and Path(record.source_image).name.split("_0000")[0]
        lines.append(f"images/{name}\tlabels/{name}\t{group}")
    (flat / "cases.tsv").write_text("\n".join(lines) + "\n")
    out["flat"] = flat / "cases.tsv"
    return out


def c2st_of(output, feature_set):
    return {r.classifier: r for r in output.c2st if r.feature_set == feature_set}


@pytest.mark.slow
def test_two_seeds_of_one_generator_are_not_told_apart(runs, tmp_path):
    real = cases_from_sources([runs["seed1"] / "manifest.jsonl"], source="real", label_map=None)
    synthetic = cases_from_sources(
        [runs["seed2"] / "manifest.jsonl"], source="synthetic", label_map=None
    )
    output = run_realism(real, synthetic, tmp_path / "same", FAST, progress=False)
    for feature_set in ("all", "appearance", "shape"):
        for classifier, result in c2st_of(output, feature_set).items():
            # 24 tumors a side; satellite nodules count as components of their own
            assert result.n_real >= 24 and result.n_synthetic >= 24 and result.n_groups == 6
            assert result.auc_low <= 0.5 <= result.auc_high, (feature_set, classifier, result)
            assert result.p_value > 0.05
    report = json.loads(output.report_json.read_text(encoding="utf-8"))
    assert report["verdict"]["label"] != "distinguishable"
    assert {"features", "roc", "montage"} <= set(output.figures)
    for path in output.figures.values():
        assert path.stat().st_size > 10_000  # a drawn PNG, not an empty canvas


@pytest.mark.slow
def test_a_flat_generator_is_told_apart_and_why(runs, tmp_path):
    out = tmp_path / "flat"
    code = run_cli(
        "realism", "--real", runs["seed1"] / "manifest.jsonl", "--synthetic", runs["flat"],
        "--synthetic-label-map", "tumorsynth", "--out", out, "--no-radiomics", "--repeats", 2,
        "--permutations", 19, "--trees", 25, "--no-progress",
    )  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    tests = {(r["feature_set"], r["classifier"]): r for r in report["c2st"]}
    for classifier in ("logistic", "forest"):
        assert tests[("appearance", classifier)]["auc"] > 0.9
        assert tests[("appearance", classifier)]["p_value"] <= 0.05
        # the shapes are seed 2's own: shape alone does not tell them apart
        assert tests[("shape", classifier)]["auc_low"] <= 0.5
    assert report["verdict"]["label"] == "distinguishable"
    said = " ".join(report["sentences"])
    assert "synthetic interiors are" in said.lower() and "uniform" in said  # in plain words
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Classifier two-sample test" in md and "montage.png" in md


def test_bad_input_is_refused_before_any_output(runs, tmp_path):
    out = tmp_path / "report"
    manifest = runs["seed1"] / "manifest.jsonl"
    with pytest.raises(InputError, match="needs real and synthetic"):
        run_realism(cases_from_sources([manifest], source="real", label_map=None), [], out, FAST)
    assert not out.exists()
    with pytest.raises(InputError, match="--permutations"):
        RealismSettings(n_permutations=-1)
    with pytest.raises(InputError, match="--group-by"):
        RealismSettings(group_by="hospital")  # type: ignore[arg-type]
    # a synthetic case whose label has no tumor of the organ asked for: said with its counts
    with pytest.raises(InputError, match="no synthetic tumors"):
        run_realism(
            cases_from_sources([manifest], source="real", label_map=None),
            cases_from_sources(
                [runs["seed2"] / "manifest.jsonl"],
                source="synthetic",
                label_map=None,
                organs=("kidney",),
            ),
            out,
            FAST,
            progress=False,
        )
    assert not out.exists()


def test_cli_refuses_out_inside_an_input_run(runs, capsys):
    manifest = runs["seed1"] / "manifest.jsonl"
    code = run_cli(
        "realism", "--real", manifest, "--synthetic", runs["seed2"] / "manifest.jsonl",
        "--out", runs["seed1"] / "report", "--no-progress",
    )  # fmt: skip
    assert code != 0
    assert "inside" in capsys.readouterr().err
    assert not (runs["seed1"] / "report").exists()


@pytest.mark.slow
def test_ircad_117_real_tumors_against_host_matched_synthetic_ones(tmp_path):
    """1.17's two real tumors against 6 synthetic liver tumors put into 1.17 itself, 10 mm away
    from the real ones: patches compare textures; the real tumors are never counted as synthetic."""
    data = require_data("ircadb01_p17")
    ct, label = data / "ircadb01_p17_ct.nii.gz", data / "ircadb01_p17_label.nii.gz"
    dataset = tmp_path / "ds17"
    for link, target in (
        (dataset / "imagesTr" / "ircadb01_p17_0000.nii.gz", ct),
        (dataset / "labelsTr" / "ircadb01_p17.nii.gz", label),
    ):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    synth = tmp_path / "synth"
    synthesize(
        dataset,
        synth,
        "lits",
        "liver",
        "medium",
        1,
        6,
        3,
        "--exclude-label",
        2,
        "--exclude-margin-mm",
        10,
    )
    listing = tmp_path / "real.txt"
    listing.write_text(f"{ct} {label}\n")
    settings = RealismSettings(
        features=FeatureSettings(radiomics=False, patches_per_tumor=4),
        n_repeats=2,
        n_permutations=9,
        n_trees=25,
        plots=False,
    )
    output = run_realism(
        cases_from_sources([listing], source="real", label_map="lits"),
        cases_from_sources([synth / "manifest.jsonl"], source="synthetic", label_map=None),
        tmp_path / "report",
        settings,
        progress=False,
    )
    whole = [row for row in output.rows if row.patch == 0]
    assert sum(row.source == "real" for row in whole) == 2
    assert sum(row.source == "synthetic" for row in whole) == 6  # the real ones left out
    real_volumes = sorted(row.volume_ml for row in whole if row.source == "real")
    assert real_volumes == pytest.approx([78.6, 85.6], abs=1.0)
    result = c2st_of(output, "appearance")["logistic"]
    assert result.n_real == 8 and result.n_synthetic == 24  # 4 patches per tumor
    assert 0.0 <= result.auc <= 1.0 and result.n_groups == 8  # one group per tumor
    mask = ndi.binary_dilation(load_label(label).array == 2, iterations=2)
    for record in read_manifest(synth / "manifest.jsonl"):
        out_label = load_label(synth / record.label_path).array
        assert not ((out_label == 2) & ~(load_label(label).array == 2) & mask).any()


@pytest.mark.slow
def test_separability_study_of_early_tumors_in_two_organs(runs, tmp_path):
    """Small liver and kidney tumors of the heuristic generator: the organ study runs without a
    two-sample test, names each organ and draws the t-SNE plot."""
    out = tmp_path / "small"
    dataset = runs["seed1"].parent / "ds"
    synthesize(dataset, out, "phantom", "liver,kidney", "small", 2, 2, 5)
    cases = cases_from_sources([out / "manifest.jsonl"], source="synthetic", label_map=None)
    settings = RealismSettings(
        features=FeatureSettings(radiomics=False), separability=True, n_repeats=2
    )
    output = run_realism([], cases, tmp_path / "report", settings, progress=False)
    assert output.c2st == []
    assert {r.classifier for r in output.separability} == {"svm", "forest", "adaboost"}
    for result in output.separability:
        assert set(result.organs) == {"kidney", "liver"}
        assert 0.0 <= result.accuracy <= 1.0
    assert output.figures["tsne"].stat().st_size > 10_000
    report = json.loads(output.report_json.read_text(encoding="utf-8"))
    assert report["verdict"]["label"] == "untested" and report["separability"]
