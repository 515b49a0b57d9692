"""``synthesize --filter``: records carry the verdicts, the run writes and prints the acceptance
table, and a filter for the wrong organ or one that rejects every tumor stops with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from cli_runner import cli
from test_cli import inputs, manifest_lines, synth_args  # noqa: F401 - the fixture
from tiny import constant_segmentor


def test_filtered_tumors_record_verdicts_and_the_run_reports_acceptance(
    inputs: SimpleNamespace,  # noqa: F811
    tmp_path: Path,
) -> None:
    always = constant_segmentor(tmp_path / "always", 5.0)
    out = tmp_path / "out"
    done = cli(*synth_args(inputs, out, "--count", "2", "--filter", always))
    assert done.code == 0, done.err
    notes = [line["filter_verdict"] for line in manifest_lines(out)]
    assert [n["verdict"] for n in notes] == ["passed", "passed"]
    assert all(n["attempts"] == 1 and n["threshold"] == 0.7 for n in notes)
    (row,) = json.loads((out / "filter_summary.json").read_text())
    assert row["organ"] == "liver" and row["tumors"] == 2 and row["acceptance"] == 1.0
    assert "acceptance" in done.out and "100%" in done.out


def test_rejected_tumors_are_kept_marked_or_the_case_stops_when_none_is_left(
    inputs: SimpleNamespace,  # noqa: F811
    tmp_path: Path,
) -> None:
    never = constant_segmentor(tmp_path / "never", -5.0)
    kept = tmp_path / "kept"
    done = cli(
        *synth_args(inputs, kept, "--count", "1", "--filter", never, "--filter-retries", "1")
    )
    assert done.code == 0, done.err
    (line,) = manifest_lines(kept)
    assert (
        line["filter_verdict"]["verdict"] == "rejected" and line["filter_verdict"]["attempts"] == 2
    )
    (row,) = json.loads((kept / "filter_summary.json").read_text())
    assert row["rejected_kept"] == 1 and row["acceptance"] == 0.0

    skipped = tmp_path / "skipped"
    args = ["--count", "1", "--filter", never, "--filter-retries", "0", "--filter-on-fail", "skip"]
    done = cli(*synth_args(inputs, skipped, *args))
    assert done.code == 2
    assert str(inputs.ct) in done.err and "rejected every tumor" in done.err
    assert not list(skipped.glob("*/*.nii.gz"))


def test_a_filter_for_another_organ_is_refused_before_any_output(
    inputs: SimpleNamespace,  # noqa: F811
    tmp_path: Path,
) -> None:
    kidney = constant_segmentor(tmp_path / "kidney", 5.0, organ="kidney")
    out = tmp_path / "out"
    done = cli(*synth_args(inputs, out, "--filter", kidney))
    assert done.code == 2 and "judges kidney tumors" in done.err
    assert not out.exists()
    done = cli(*synth_args(inputs, out, "--filter", tmp_path / "none"))
    assert done.code == 2 and "nothing there" in done.err and not out.exists()


def test_replay_needs_no_filter_and_verify_filter_scores_again(
    inputs: SimpleNamespace,  # noqa: F811
    tmp_path: Path,
) -> None:
    always = constant_segmentor(tmp_path / "always", 5.0)
    out = tmp_path / "out"
    assert cli(*synth_args(inputs, out, "--count", "2", "--filter", always)).code == 0
    plain = cli("replay", out / "manifest.jsonl", "--out", tmp_path / "plain", "--no-progress")
    assert plain.code == 0, plain.err
    verified = cli(
        "replay",
        out / "manifest.jsonl",
        "--out",
        tmp_path / "v",
        "--verify-filter",
        "--no-progress",
    )
    assert verified.code == 0, verified.err
    assert "2 verdicts unchanged" in verified.out
    assert [
        line["filter_verdict"]["verified_score"] for line in manifest_lines(tmp_path / "v")
    ] == [
        1.0,
        1.0,
    ]
    # another segmentor (other weights) in the recorded place is refused, naming it
    moved = constant_segmentor(tmp_path / "other", -5.0)
    refused = cli(
        "replay",
        out / "manifest.jsonl",
        "--out",
        tmp_path / "w",
        "--verify-filter",
        moved,
        "--no-progress",
    )
    assert (
        refused.code == 2
        and str(moved) in refused.err
        and "is not the liver segmentor" in refused.err
    )
    assert not (tmp_path / "w").exists()


def test_export_nnunet_filters_its_synthetic_cases(tmp_path: Path) -> None:
    from tiny import write_phantom_dataset

    data = write_phantom_dataset(tmp_path / "healthy", cases=2)
    out = tmp_path / "Dataset123_Filtered"
    args = ["--healthy", data, "--label-map", "phantom", "--count", "1", "--size", "small"]
    done = cli(
        "export-nnunet",
        *args,
        "--filter",
        constant_segmentor(tmp_path / "always", 5.0),
        "--out",
        out,
        "--no-progress",
    )
    assert done.code == 0, done.err
    assert [line["filter_verdict"]["verdict"] for line in manifest_lines(out)] == ["passed"] * 2
    (row,) = json.loads((out / "filter_summary.json").read_text())
    assert row["tumors"] == 2 and "100%" in done.out
