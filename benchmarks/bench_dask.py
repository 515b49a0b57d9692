"""Cases per second of batch synthesis on a Dask LocalCluster, against one process (issue 13).

A folder of healthy phantoms is written to a temporary folder, then synthesized (one small liver
tumor per variant, ``--per-case`` variants per case) by:

- ``1 process``: ``run_batch(workers=1)``, the baseline (``--workers N``: the process pool);
- ``local:N``: ``run_batch(dask="local:N")`` end to end, as ``--dask local:N`` runs it (starting
  the cluster and its workers, importing tumorsynth there, closing it are counted);
- ``tcp N (warm)``: the steady state: a LocalCluster of N workers started and warmed (one run
  done) beforehand, reached by its ``tcp://`` address as an external scheduler would be.

Each row is the best of ``--repeats`` runs. Every run's files are checked equal (sha256) to the baseline's. The machine's load average is
printed: on a shared machine the numbers move with it.

    .venv/bin/python benchmarks/bench_dask.py                        # 1 and 2 workers, here
    python benchmarks/bench_dask.py --workers 1 2 16 --cases 64      # a 16-core machine

``--markdown`` prints the table as markdown (benchmarks/gpu_scale.sh).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from tumorsynth.io.datasets import discover_cases  # noqa: E402
from tumorsynth.io.nifti import save_volume  # noqa: E402
from tumorsynth.phantom import make_phantom  # noqa: E402
from tumorsynth.pipelines.batch import BatchSettings, run_batch  # noqa: E402
from tumorsynth.pipelines.synthesize import TumorRequest  # noqa: E402


def write_dataset(root: Path, cases: int, shape: tuple[int, int, int]) -> Path:
    for i in range(cases):
        ct, seg = make_phantom(i, shape=shape, spacing_mm=(4.0, 4.0, 5.0))
        save_volume(ct, root / "imagesTr" / f"ph{i:03d}_0000.nii.gz")
        save_volume(seg, root / "labelsTr" / f"ph{i:03d}.nii.gz")
    return root


def hashes(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.glob("*Tr/*"))
    }


def timed_run(
    cases, out: Path, settings: BatchSettings, repeats: int = 1, **executor: object
) -> float:
    """Best seconds of ``repeats`` runs, each into a fresh folder (``out``, ``out.1``, ...)."""
    times = []
    for repeat in range(repeats):
        folder = out if repeat == 0 else out.with_name(f"{out.name}.{repeat}")
        start = time.perf_counter()
        result = run_batch(cases, folder, settings, progress=False, **executor)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        assert result.variants_done == len(cases) * settings.per_case
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--per-case", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=[96, 80, 48])
    parser.add_argument("--repeats", type=int, default=3, help="best of R runs per row")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    settings = BatchSettings(
        (TumorRequest("liver", 1, "small"),), label_map="phantom", seed=0, per_case=args.per_case
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cases = discover_cases(write_dataset(tmp / "data", args.cases, tuple(args.shape)))
        variants = len(cases) * args.per_case
        print(
            f"{len(cases)} phantoms {tuple(args.shape)} x {args.per_case} variants = {variants} "
            f"case variants; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        timed_run(cases[:1], tmp / "warm", settings)  # imports, generator, page cache
        baseline = timed_run(cases, tmp / "serial", settings, args.repeats)
        expected = hashes(tmp / "serial")
        rows = [("1 process", baseline)]
        for n in args.workers:
            if n > 1:  # the --workers processes, for comparison
                out = tmp / f"pool{n}"
                rows.append(
                    (f"--workers {n}", timed_run(cases, out, settings, args.repeats, workers=n))
                )
                assert hashes(out) == expected, f"--workers {n} wrote other files"
            out = tmp / f"local{n}"
            rows.append(
                (
                    f"local:{n} (with start)",
                    timed_run(cases, out, settings, args.repeats, dask=f"local:{n}"),
                )
            )
            assert hashes(out) == expected, f"local:{n} wrote other files"
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
            )
            try:
                address = cluster.scheduler_address
                with Client(address) as client:  # every worker imports tumorsynth now
                    client.run(importlib.import_module, "tumorsynth.pipelines.batch")
                timed_run(cases[: 2 * n], tmp / f"warm{n}", settings, dask=address)
                out = tmp / f"tcp{n}"
                rows.append(
                    (f"tcp {n} (warm)", timed_run(cases, out, settings, args.repeats, dask=address))
                )
                assert hashes(out) == expected, f"tcp {n} wrote other files"
            finally:
                cluster.close()
        if args.markdown:
            print("\n| executor | seconds | cases/s | vs 1 process |\n| --- | ---: | ---: | ---: |")
        else:
            print(f"{'executor':<24} {'seconds':>8} {'cases/s':>8} {'vs 1 process':>13}")
        for name, seconds in rows:
            if args.markdown:
                print(
                    f"| {name} | {seconds:.2f} | {variants / seconds:.2f} "
                    f"| {baseline / seconds:.2f}x |"
                )
            else:
                print(
                    f"{name:<24} {seconds:8.2f} {variants / seconds:8.2f} "
                    f"{baseline / seconds:12.2f}x"
                )
        if args.markdown:
            print()
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
