"""``tumorsynth turing score STUDY``: sensitivity (synthetic called synthetic), specificity and
accuracy per reader and pooled, by organ and size class, Fleiss' kappa, CSV export and a plot.

Prints the main table and the verdict; writes score.md, score.json, answers.csv, summary.csv
and score.png into ``--out`` (default STUDY/score).
"""

from __future__ import annotations

import argparse

__all__ = ["add_score_arguments", "run_score"]


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY", help="the study folder (`turing create` wrote)")
    parser.add_argument(
        "--out", metavar="DIR", help="folder for the report files (default STUDY/score)"
    )
    parser.add_argument(
        "--readers",
        nargs="+",
        metavar="NAME",
        default=None,
        help="score only these readers (default: all)",
    )
    parser.add_argument(
        "--min-answers",
        type=int,
        default=1,
        metavar="N",
        help="leave out readers with fewer answers (default 1); readers who stopped early are "
        "included with their number of answers shown",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=2000,
        metavar="N",
        help="bootstrap resamples of the pooled intervals and of kappa (default 2000)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the bootstraps; the same seed gives the same intervals (default 0)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip score.png")


def run_score(args: argparse.Namespace) -> int:
    from tumorsynth.turing.score import score_study
    from tumorsynth.turing.score_report import reader_table, verdict

    output = score_study(
        args.study,
        args.out,
        readers=args.readers,
        min_answers=args.min_answers,
        n_resamples=args.resamples,
        seed=args.seed,
        plots=not args.no_plots,
    )
    score = output.score
    print(f"{output.title}: positive = synthetic")
    print(reader_table(score))
    for name, answers in score.excluded:
        print(f"left out: {name} ({answers} answer(s), fewer than --min-answers)")
    print()
    print(verdict(score))
    print("-> " + ", ".join(str(path) for path in output.files.values()))
    return 0
