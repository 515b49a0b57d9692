"""benchmarks/bench_adversarial.py runs end to end on the CPU (tiny sizes), so issue 12's GPU run
does not fail on a stale script: generator per batch, filter per batch, the training loop, and
the budget that skips what does not fit."""

from __future__ import annotations

from tiny import load_benchmark


def load_bench():
    return load_benchmark("bench_adversarial")


def test_the_adversarial_benchmark_runs_on_cpu(capsys):
    load_bench().main(
        ["--crop", "32", "--filter-cube", "32", "--batch", "1", "2", "--repeats", "1",
         "--train-batch", "1", "--train-steps", "2"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| 32^3 | fp32 | 1 |" in out and "| 32^3 | fp32 | 2 |" in out
    assert "| fp32 | 2 |" in out.split("filter")[1]
    assert "| adversarial 32^3 | 1 | 2 |" in out and "skipped" not in out


def test_the_budget_skips_what_does_not_fit(capsys):
    load_bench().main(["--crop", "32", "--batch", "1", "--repeats", "1", "--budget-s", "0"])
    out = capsys.readouterr().out
    assert "skipped (past --budget-s 0): generator fp32 batch 1" in out
    assert "skipped (past --budget-s 0): training" in out
