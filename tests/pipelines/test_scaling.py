"""The data-scaling study on phantoms: the grid it builds (nested real subsets per seed, the modes
of each synthetic setting, vary, external folders), what it writes (CSV, table, figures), that a
second run redoes nothing, that an arm folder made with other settings is refused, and bad study
files named before anything is trained."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny import phantom_test_set, tiny_config, write_phantom_dataset

from tumorsynth.errors import InputError
from tumorsynth.io.datasets import discover_cases
from tumorsynth.pipelines import experiment
from tumorsynth.pipelines.batch import BatchSettings, run_batch
from tumorsynth.pipelines.scaling import load_scaling, run_scaling
from tumorsynth.pipelines.scaling_report import curve_points, scaling_table
from tumorsynth.pipelines.synthesize import TumorRequest


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "Dataset001_Phantom", cases=3)


def tumor_cases(healthy: Path, out: Path, seed: int, n: int) -> Path:
    run_batch(
        discover_cases(healthy)[:n],
        out,
        BatchSettings((TumorRequest("liver", 2, "medium"),), label_map="phantom", seed=seed),
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def real_pool(healthy, tmp_path_factory) -> Path:
    """Three phantoms with liver tumors: the annotated 'real' scans."""
    return tumor_cases(healthy, tmp_path_factory.mktemp("real"), seed=3, n=3)


@pytest.fixture(scope="module")
def test_set(healthy, tmp_path_factory) -> Path:
    return tumor_cases(healthy, tmp_path_factory.mktemp("test"), seed=9, n=2)


def write_study(tmp_path, healthy, real_pool, test_set, **changes) -> Path:
    base = tiny_config(healthy, tmp_path / "unused", real=[str(real_pool)])
    base["data"]["real_label_map"] = "tumorsynth"
    base["optim"]["max_steps"] = 4
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {
        "name": "tiny scaling",
        "out_dir": str(tmp_path / "study"),
        "base": "base.yaml",
        "real_counts": [0, 1, 2],
        "seeds": [0, 1],
        "synthetic": [
            {"name": "real only"},
            {"name": "heuristic", "generator": "heuristic", "share": 0.5},
        ],
        "test": [phantom_test_set(test_set)],
        "evaluate": {"bootstrap": 0},
    }
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def test_the_grid_nests_real_scans_per_seed_and_sets_each_mode(
    tmp_path, healthy, real_pool, test_set
):
    config = load_scaling(write_study(tmp_path, healthy, real_pool, test_set))
    cells = {(a.curve, a.real_count, a.seed): a.train for a in config.arms}
    # real only at 0 scans has nothing to train on: left out
    assert ("real only", 0, 0) not in cells and len(cells) == 2 * 2 + 3 * 2
    for seed in (0, 1):
        one = [e["image"] for e in cells["real only", 1, seed].data.real]
        two = [e["image"] for e in cells["real only", 2, seed].data.real]
        assert len(one) == 1 and two[:1] == one  # nested
        assert [e["image"] for e in cells["heuristic", 2, seed].data.real] == two
    firsts = {cells["real only", 1, s].data.real[0]["image"] for s in (0, 1)}
    assert len(firsts) == 2  # the seeds order the pool differently (seeds 0 and 1 do)
    assert cells["heuristic", 0, 0].data.mode == "synthetic"
    assert cells["heuristic", 1, 0].data.mode == "mixed"
    assert cells["heuristic", 1, 0].data.synthetic_fraction == 0.5
    assert cells["real only", 2, 1].data.mode == "real"
    assert all(t.data.val_fraction == 0.0 and t.seed == s for (_, _, s), t in cells.items())
    assert len({t.train.out_dir for t in cells.values()}) == len(cells)


def test_vary_and_external_folders_make_their_own_curves(tmp_path, healthy, real_pool, test_set):
    synthetic = [
        {
            "name": "heuristic",
            "generator": "heuristic",
            "vary": {"data.tumor_size": {"small tumors": "small", "large tumors": "large"}},
        },
        {"name": "other tool", "folder": str(test_set), "label_map": "tumorsynth"},
    ]
    path = write_study(
        tmp_path, healthy, real_pool, test_set, synthetic=synthetic, real_counts=[0, 1], seeds=[0]
    )
    config = load_scaling(path)
    assert config.curves == ("heuristic, small tumors", "heuristic, large tumors", "other tool")
    cells = {(a.curve, a.real_count): a.train for a in config.arms}
    assert cells["heuristic, small tumors", 1].data.tumor_size == "small"
    assert cells["heuristic, large tumors", 0].data.tumor_size == "large"
    external = cells["other tool", 0].data
    assert external.mode == "real" and external.real == (
        {"path": str(test_set), "label_map": "tumorsynth"},
    )
    assert len(cells["other tool", 1].data.real) == 2


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"real_counts": [0, 4]}, r"real_counts: expected at most 3"),
        ({"seeds": [1, 1]}, r"seeds: expected distinct"),
        ({"synthetic": [{"name": "a", "folder": "nowhere", "label_map": "lits"}]}, "nowhere"),
        ({"synthetic": [{"name": "a", "folder": "."}]}, r"label_map: .*no default|label map"),
        ({"synthetic": [{"name": "a", "share": 0.3}]}, "only a generator's crops"),
        ({"synthetic": [{"name": "a", "generator": "heuristic", "share": 1.0}]}, r"in \(0, 1\)"),
        ({"synthetic": [{"name": "a"}, {"name": "a"}]}, "distinct"),
        ({"test": []}, "test: expected at least one"),
        ({"synthetic": [{"name": "h", "generator": "nope"}]}, "nope"),
    ],
)
def test_bad_studies_are_named_before_training(
    tmp_path, healthy, real_pool, test_set, changes, match
):
    path = write_study(tmp_path, healthy, real_pool, test_set, **changes)
    with pytest.raises(InputError, match=match) as caught:
        load_scaling(path)
    assert str(path) in str(caught.value)
    assert not (tmp_path / "study").exists()


def test_the_table_and_points_average_over_seeds():
    rows = [
        {"curve": "h", "real_count": n, "seed": s, "test": "t", "dsc_mean": v, "fp_per_case": 1.0}
        for n, s, v in [(0, 0, 0.2), (0, 1, 0.4), (1, 0, 0.5), (1, 1, None)]
    ]
    assert curve_points(rows, "h", "t", "dsc_mean") == [
        (0, 0.3, 0.2, 0.4, 2),
        (1, 0.5, 0.5, 0.5, 1),
    ]
    table = scaling_table("s", ["h"], [0, 1], [experiment.TestSet("t", "i", "l", "lits")], rows)
    assert "| h | 0 | 2 | 0.300 [0.20, 0.40] | n/a |" in table
    assert "| h | 1 | 2 | 0.500 | n/a |" in table


@pytest.mark.slow
def test_a_study_writes_curves_and_resumes_without_redoing(tmp_path, healthy, real_pool, test_set):
    path = write_study(
        tmp_path,
        healthy,
        real_pool,
        test_set,
        real_counts=[0, 1],
        seeds=[0],
        synthetic=[{"name": "real only"}, {"name": "heuristic", "generator": "heuristic"}],
    )
    out = run_scaling(load_scaling(path), progress=False)
    with open(out / "scaling.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["curve"], r["real_count"]) for r in rows] == [
        ("real only", "1"),
        ("heuristic", "0"),
        ("heuristic", "1"),
    ]
    assert all(0.0 <= float(r["dsc_mean"]) <= 1.0 for r in rows)
    assert "| heuristic | 1 | 1 |" in (out / "scaling.md").read_text()
    figure = out / "scaling_phantom_liver.png"
    assert figure.stat().st_size > 10_000
    arm = out / "arms" / "heuristic" / "real1_seed0"
    saved = json.loads((arm / "arm.json").read_text())
    assert saved["data"]["mode"] == "mixed" and len(saved["data"]["real"]) == 1
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("arms/*/*/evaluation/*/report.json")}
    assert len(stamps) == 3
    run_scaling(load_scaling(path), progress=False)  # nothing is redone
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # the same folder with other settings is refused, naming the arm and the setting
    base = tmp_path / "base.yaml"
    base.write_text(base.read_text().replace("max_steps: 4", "max_steps: 5"))
    with pytest.raises(InputError, match=r"arm\.json: this arm was made with other settings") as e:
        run_scaling(load_scaling(path), progress=False)
    assert "optim.max_steps: 4 in arm.json, 5 now" in str(e.value)
    assert np.isfinite([float(r["fp_per_case"]) for r in rows]).all()
