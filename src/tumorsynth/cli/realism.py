"""``tumorsynth realism``: are the synthetic tumors realistic, and where do they differ?

Per tumor: radiomics (pyradiomics, the ``realism`` extra) and context features; then a classifier
two-sample test (logistic regression and random forest, cross-validation grouped by scan, a
label-permutation null) on several feature sets, the largest differences in words, figures, and
optionally the organ-separability study of early tumors. Writes report.md, report.json, PNGs.
"""

from __future__ import annotations

import argparse
from typing import Any

from tumorsynth.cli._common import add_seed, split_organs

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sources = (
        "a dataset folder (nnU-Net, MSD, AbdomenAtlas), a manifest.jsonl of tumorsynth, or a "
        "list file (.txt/.csv/.tsv) of IMAGE LABEL [GROUP] lines; repeatable"
    )
    parser.add_argument("--real", action="append", default=[], metavar="SOURCE", help=sources)
    parser.add_argument("--synthetic", action="append", default=[], metavar="SOURCE", help=sources)
    parser.add_argument(
        "--real-label-map",
        metavar="PRESET_OR_JSON",
        help="label map of the real cases' labels (lits, msd, kits, totalsegmentator, ... or JSON)",
    )
    parser.add_argument(
        "--synthetic-label-map",
        metavar="PRESET_OR_JSON",
        help="label map of the synthetic labels (default for manifests: tumorsynth's outputs)",
    )
    parser.add_argument("--out", metavar="DIR", help="folder for report.md, report.json, PNGs")
    parser.add_argument(
        "--organ", default="", help="organs whose tumors are compared (default: all with tumors)"
    )
    parser.add_argument(
        "--spacing-mm",
        type=float,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="common spacing radiomics are computed at (they depend on it; default 1 1 1)",
    )
    parser.add_argument(
        "--bin-width-hu", type=float, default=None, help="radiomics HU bin width (default 25)"
    )
    parser.add_argument(
        "--shell-mm",
        type=float,
        nargs=2,
        default=None,
        metavar=("FROM", "TO"),
        help="host parenchyma shell around each tumor, mm from its edge (default 3 10)",
    )
    parser.add_argument(
        "--min-volume-mm3",
        type=float,
        default=None,
        help="ignore 26-connected components smaller than this (default 30 mm^3)",
    )
    parser.add_argument(
        "--no-radiomics", action="store_true", help="context, size and shape features only"
    )
    parser.add_argument(
        "--patches",
        type=int,
        default=0,
        metavar="N",
        help="compare N spherical patches per tumor across its edge instead of whole tumors "
        "(for few real tumors; default 0)",
    )
    parser.add_argument(
        "--patch-radius-mm", type=float, default=None, help="patch radius (default 10 mm)"
    )
    parser.add_argument(
        "--group-by",
        choices=("auto", "scan", "tumor"),
        default="auto",
        help="cross-validation groups (default auto: scans when each side has two or more)",
    )
    parser.add_argument("--splits", type=int, default=None, help="grouped CV folds (default 5)")
    parser.add_argument("--repeats", type=int, default=None, help="CV repeats (default 5)")
    parser.add_argument(
        "--permutations", type=int, default=None, help="label permutations for p (default 50)"
    )
    parser.add_argument(
        "--trees", type=int, default=None, help="random-forest trees of the C2ST (default 100)"
    )
    parser.add_argument(
        "--separability",
        action="store_true",
        help="also run the organ-separability study on early tumors (SVM, RF, AdaBoost, t-SNE)",
    )
    parser.add_argument(
        "--max-diameter-mm",
        type=float,
        default=None,
        help="tumors of the separability study are smaller than this (default 20: early stage)",
    )
    parser.add_argument("--cache", metavar="DIR", help="feature cache (default OUT/cache)")
    add_seed(parser)
    parser.add_argument("--workers", type=int, default=1, metavar="W", help="processes")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.realism import RealismSettings, run_realism
    from tumorsynth.pipelines.realism_inputs import cases_from_sources, check_out_apart
    from tumorsynth.realism.features import FeatureSettings

    if not args.out:
        raise InputError("--out", "is required", fix="pass --out DIR")
    if not args.real and not args.synthetic:
        raise InputError("--real/--synthetic", "expected at least one source, found none")
    if args.workers < 1:
        raise InputError("--workers", f"expected an integer >= 1, found {args.workers}")
    organs = split_organs(args.organ) if args.organ else ()
    check_out_apart(args.out, args.real, "--real")
    check_out_apart(args.out, args.synthetic, "--synthetic")
    # flags left out keep the settings' own defaults (the help repeats them)
    features = _given(
        spacing_mm=args.spacing_mm and tuple(float(s) for s in args.spacing_mm),
        bin_width_hu=args.bin_width_hu,
        shell_mm=args.shell_mm and tuple(float(s) for s in args.shell_mm),
        min_volume_mm3=args.min_volume_mm3,
        patch_radius_mm=args.patch_radius_mm,
    )
    study = _given(
        n_splits=args.splits,
        n_repeats=args.repeats,
        n_permutations=args.permutations,
        n_trees=args.trees,
        max_diameter_mm=args.max_diameter_mm,
    )
    settings = RealismSettings(
        features=FeatureSettings(
            radiomics=not args.no_radiomics,
            patches_per_tumor=int(args.patches),
            seed=int(args.seed),
            **features,
        ),
        group_by=args.group_by,
        separability=bool(args.separability),
        plots=not args.no_plots,
        seed=int(args.seed),
        **study,
    )
    real = (
        cases_from_sources(
            args.real, source="real", label_map=args.real_label_map, organs=organs, flag="--real"
        )
        if args.real
        else []
    )
    synthetic = (
        cases_from_sources(
            args.synthetic,
            source="synthetic",
            label_map=args.synthetic_label_map,
            organs=organs,
            flag="--synthetic",
        )
        if args.synthetic
        else []
    )
    result = run_realism(
        real,
        synthetic,
        args.out,
        settings,
        workers=int(args.workers),
        cache_dir=args.cache,
        progress=not args.no_progress,
    )
    for line in result.sentences[:3]:
        print(line)
    for test in result.c2st:
        if test.feature_set in ("all", "appearance"):
            print(
                f"C2ST {test.feature_set:<10} {test.classifier:<8} AUC {test.auc:.2f} "
                f"[{test.auc_low:.2f}, {test.auc_high:.2f}] p={test.p_value:.3f}"
            )
    print(f"report -> {result.report_md}")
    return 0


def _given(**values: Any) -> dict[str, Any]:
    """The settings a flag gave (those left out are None)."""
    return {key: value for key, value in values.items() if value is not None}
