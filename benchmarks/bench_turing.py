"""The reader study end to end, with scripted readers whose behaviour is known.

Usage: .venv/bin/python benchmarks/bench_turing.py [--out runs/bench_turing] [--readers 20]
       [--items 100] [--seed 0]

1. A study of ``--items`` items is made with ``tumorsynth turing create`` from phantoms: "real"
   tumors are heuristic tumors of one seed, "synthetic" ones of another (the readers are scripted,
   so what the items show does not matter; that the plumbing finds their behaviour back does).
2. Simulated study: six scripted readers with known sensitivity and specificity answer every
   item through a real ``tumorsynth turing serve`` process; ``turing score`` must find those
   numbers back (expected vs measured, with the score report's intervals and Fleiss' kappa).
3. Load: ``--readers`` readers at once, each downloading every item volume and answering it; the
   server is killed (SIGKILL) at half of the answers and restarted; lost and duplicated answers
   are counted against what the server acknowledged, with answers/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from tumorsynth.cli.main import main as cli
from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.turing.layout import connect_answers, read_answers, read_key, read_study
from tumorsynth.turing.score import score_study
from tumorsynth.turing.simulate import ScriptedReader, ServerProcess, run_readers
from tumorsynth.turing.store import AnswerStore

REPO = Path(__file__).resolve().parents[1]
#: name -> (sensitivity, specificity): two FreeTumor-like readers (51% of synthetic tumors
#: caught), two better ones, a guesser and one who calls almost everything real.
SIMULATED = {
    "fooled_1": (0.50, 0.70),
    "fooled_2": (0.50, 0.70),
    "expert_1": (0.80, 0.85),
    "expert_2": (0.80, 0.85),
    "guesser": (0.50, 0.50),
    "says_real": (0.10, 0.95),
}


def make_study(out: Path, items: int, seed: int) -> Path:
    cases = max(4, items // 10)
    per_case = -(-items // (2 * cases))
    for i in range(cases):
        ct, seg = make_phantom(i, shape=(96, 80, 48), spacing_mm=(2.0, 2.0, 2.5))
        save_volume(ct, out / "ds" / "imagesTr" / f"p{i}_0000.nii.gz")
        save_volume(seg, out / "ds" / "labelsTr" / f"p{i}.nii.gz")
    for name, tumor_seed in (("real", seed + 1), ("synthetic", seed + 2)):
        code = cli(
            [
                "synthesize", "--dataset", str(out / "ds"), "--out", str(out / name),
                "--label-map", "phantom", "--organ", "liver", "--size", "medium", "--count",
                "1", "--per-case", str(per_case), "--seed", str(tumor_seed), "--no-progress",
            ]
        )  # fmt: skip
        assert code == 0, f"synthesize {name} failed"
    config = {
        "title": "Simulated reader study",
        "seed": seed,
        "real": [{"path": str(out / "real" / "manifest.jsonl")}],
        "synthetic": [{"path": str(out / "synthetic" / "manifest.jsonl")}],
        "organs": ["liver"],
        "n_items": items,
    }
    (out / "study.yaml").write_text(yaml.safe_dump(config))
    study = out / "study"
    code = cli(
        ["turing", "create", "--config", str(out / "study.yaml"), "--out", str(study),
         "--no-progress"]
    )  # fmt: skip
    assert code == 0, "turing create failed"
    return study


def simulated_study(study: Path, seed: int) -> None:
    store = AnswerStore(study, create=True)
    readers = [
        ScriptedReader(name, store.add_reader(name)[1], sens, spec)
        for name, (sens, spec) in SIMULATED.items()
    ]
    key = read_key(study)
    with ServerProcess(study) as server:
        run_readers(server.url, readers, key, seed=seed)
    out = score_study(study, study / "score", seed=seed)
    n_synthetic = sum(e.truth == "synthetic" for e in key.values())
    print(f"\n## Simulated study ({len(key)} items, {n_synthetic} synthetic, 6 scripted readers)\n")
    print("| reader | sensitivity expected | measured | specificity expected | measured |")
    print("|---|---|---|---|---|")
    answers = read_answers(study)
    for name, (sens, spec) in SIMULATED.items():
        mine = [a for a in answers if a.reader == name]
        synthetic = [a for a in mine if key[a.item_id].truth == "synthetic"]
        real = [a for a in mine if key[a.item_id].truth == "real"]
        measured_sens = np.mean([a.call == "synthetic" for a in synthetic])
        measured_spec = np.mean([a.call == "real" for a in real])
        print(f"| {name} | {sens:.2f} | {measured_sens:.2f} | {spec:.2f} | {measured_spec:.2f} |")
    expected_sens = np.mean([s for s, _ in SIMULATED.values()])
    expected_spec = np.mean([p for _, p in SIMULATED.values()])
    print(f"| pooled | {expected_sens:.2f} | see below | {expected_spec:.2f} | see below |")
    print(f"\n`turing score` wrote {', '.join(p.name for p in out.files.values())}; its report:\n")
    print(out.files["markdown"].read_text(encoding="utf-8"))


def load_test(study: Path, n_readers: int, seed: int) -> None:
    target = study.parent / "study_load"
    shutil.copytree(study, target, ignore=shutil.ignore_patterns("answers.sqlite*", "score"))
    store = AnswerStore(target, create=True)
    readers = [
        ScriptedReader(f"load{i:02d}", store.add_reader(f"load{i:02d}")[1], 0.5, 0.5)
        for i in range(n_readers)
    ]
    key = read_key(target)
    total = n_readers * len(key)
    server = ServerProcess(target, log=target.parent / "load_server.log").start()
    killed: list[float] = []
    back: list[float] = []

    def kill_once(done: int) -> None:
        if done >= total // 2 and not killed:
            killed.append(time.monotonic())
            threading.Thread(target=restart, daemon=True).start()

    def restart() -> None:
        server.kill()
        server.start()
        back.append(time.monotonic())

    try:
        result = run_readers(
            server.url, readers, key, seed=seed, on_answer=kill_once, fetch_items=True
        )
    finally:
        server.stop()
    stored = {(a.reader, a.item_id): (a.call, a.confidence) for a in read_answers(target)}
    lost = sum(1 for k, v in result.acknowledged.items() if stored.get(k) != v)
    with connect_answers(target) as connection:
        rows = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT reader_id || item_id) FROM answers"
        )
        count, distinct = rows.fetchone()
    latencies = np.array(result.latencies_s) * 1000
    info = read_study(target)
    print(f"\n## Load: {n_readers} readers x {len(key)} items, SIGKILL + restart at half\n")
    print("| answers acknowledged | stored | lost | duplicated | answers/s | POST ms p50 / p95 / "
          "p99 / max | item MiB fetched | retries | server down s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    down = back[0] - killed[0] if killed and back else float("nan")
    print(
        f"| {len(result.acknowledged)} / {total} | {count} | {lost} | {count - distinct} | "
        f"{result.answers_per_s:.0f} | {np.percentile(latencies, 50):.0f} / "
        f"{np.percentile(latencies, 95):.0f} / {np.percentile(latencies, 99):.0f} / "
        f"{latencies.max():.0f} | {result.bytes_fetched / 2**20:.0f} "
        f"({info.item_bytes / 1024:.0f} KiB per item) | {result.retries} | {down:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_turing")
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    started = time.monotonic()
    study = make_study(args.out, args.items, args.seed)
    print(f"study made in {time.monotonic() - started:.1f} s: {args.out / 'study'}")
    simulated_study(study, args.seed)
    load_test(study, args.readers, args.seed)


if __name__ == "__main__":
    main()
