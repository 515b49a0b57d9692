"""benchmarks/bench_diffusion.py runs end to end on the CPU (tiny sizes), so the GPU run of
issue 11 does not fail on a stale script: sampling per precision, both training stages, the
budget that skips what does not fit."""

from __future__ import annotations

from tiny import load_benchmark


def load_bench():
    return load_benchmark("bench_diffusion")


def test_the_diffusion_benchmark_runs_on_cpu(capsys):
    bench = load_bench()
    bench.main(
        ["--device", "cpu", "--crop", "16", "--steps", "1", "--batch", "1", "2", "--repeats",
         "1", "--train-batch", "1", "--train-steps", "1", "--pipeline-tumors", "0"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| fp32 | 1 | 1 |" in out and "| fp32 | 1 | 2 |" in out
    assert "| autoencoder | fp32 | 1 |" in out and "| denoiser | fp32 | 1 |" in out
    assert "skipped" not in out


def test_the_budget_skips_what_does_not_fit(capsys):
    bench = load_bench()
    bench.main(
        ["--device", "cpu", "--crop", "16", "--steps", "1", "--batch", "1", "--repeats", "1",
         "--train-batch", "1", "--train-steps", "1", "--pipeline-tumors", "1", "--budget-s", "0"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "skipped (past --budget-s 0): sampling fp32 1 steps batch 1" in out
    assert "training autoencoder fp32" in out and "pipeline" in out.split("skipped")[1]
