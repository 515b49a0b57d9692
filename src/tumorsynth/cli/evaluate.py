"""``tumorsynth evaluate``: predicted label maps against ground truth -> report.json/.md, plots.

With tumor probability maps (``<pred>/probabilities`` or ``--probabilities``) the report adds the
FROC; with ``--metadata`` a per-case table, every metric per subgroup.
"""

from __future__ import annotations

import argparse

from tumorsynth.cli._common import add_seed

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", metavar="DIR", help="predicted label maps <case>.nii.gz")
    parser.add_argument(
        "--gt",
        metavar="DIR",
        help="ground-truth label maps <case>.nii.gz (or a dataset folder with labelsTs/labelsTr)",
    )
    parser.add_argument(
        "--label-map",
        metavar="PRESET_OR_JSON",
        help="label map of the ground truth: lits, msd, kits, tumorsynth, abdomenatlas, phantom, "
        'or a JSON file like {"liver": 1, "liver_tumor": 2}',
    )
    parser.add_argument(
        "--pred-label-map",
        metavar="PRESET_OR_JSON",
        help="label map of the predictions (default: the same as --label-map)",
    )
    parser.add_argument(
        "--organ",
        default="all",
        help="liver, pancreas, kidney, colon, esophagus, uterus (any organ of the map) or all "
        "tumor ids (default all; with several organs, the report also has a table per organ)",
    )
    parser.add_argument("--out", metavar="DIR", help="folder for report.json, report.md, plots")
    parser.add_argument(
        "--probabilities",
        metavar="DIR",
        help="tumor probability maps <case_id>_<organ>_tumor.nii.gz (uint8, round(255 p)) for the "
        "FROC (default: PRED/probabilities when it exists, as predict --save-probabilities "
        "writes them)",
    )
    parser.add_argument(
        "--metadata",
        metavar="FILE.csv",
        help="per-case table with a case_id column and any others (site, scanner, phase, age, "
        "sex...): every metric per subgroup of each column",
    )
    parser.add_argument(
        "--metadata-bins",
        action="append",
        default=[],
        metavar="COLUMN=SPEC",
        help="how to split a numeric column: edges (age=40,60: <40, [40,60), >=60), quantile bins "
        "(age=q4) or categorical (phase=categorical); default: 3 quantile bins for numbers with "
        "more than 3 distinct values; repeatable",
    )
    parser.add_argument(
        "--tolerance-mm", type=float, default=2.0, help="NSD tolerance in mm (default 2)"
    )
    parser.add_argument(
        "--patient-threshold-mm3",
        type=float,
        default=30.0,
        help="a case is positive above this predicted tumor volume in mm^3 (default 30)",
    )
    parser.add_argument(
        "--min-radius-mm",
        type=float,
        default=3.0,
        help="predicted components under this equivalent radius are ignored for the patient-level "
        "call (default 3)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples over cases for the 95%% intervals (default 1000; 0: none)",
    )
    add_seed(parser)
    parser.add_argument("--workers", type=int, default=1, metavar="W", help="processes")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.evaluation import (
        check_label_maps,
        evaluate_folders,
        froc_line,
        parse_bin_specs,
        summary_line,
        write_report,
    )

    for flag, value in (("--pred", args.pred), ("--gt", args.gt), ("--out", args.out)):
        if not value:
            raise InputError(flag, "is required", fix=f"pass {flag} DIR")
    if not args.label_map:
        raise InputError(
            "--label-map", "is required: which label ids are tumor", fix="e.g. --label-map lits"
        )
    label_map_gt, organ = str(args.label_map), str(args.organ)
    label_map_pred = str(args.pred_label_map) if args.pred_label_map else None
    bins = parse_bin_specs(args.metadata_bins)
    if bins and not args.metadata:
        raise InputError("--metadata-bins", "needs --metadata FILE.csv", fix="pass the table")
    check_label_maps(
        args.pred, args.gt, label_map_gt=label_map_gt, label_map_pred=label_map_pred, organ=organ
    )
    report = evaluate_folders(
        args.pred,
        args.gt,
        label_map_gt=label_map_gt,
        label_map_pred=label_map_pred,
        organ=organ,
        nsd_tolerance_mm=float(args.tolerance_mm),
        patient_threshold_mm3=float(args.patient_threshold_mm3),
        min_radius_mm=float(args.min_radius_mm),
        n_bootstrap=int(args.bootstrap),
        seed=int(args.seed),
        workers=int(args.workers),
        progress=not args.no_progress,
        probabilities=args.probabilities,
        metadata=args.metadata,
        metadata_bins=bins,
    )
    written = write_report(report, args.out, plots=not args.no_plots)
    print(summary_line(report))
    froc = froc_line(report)
    print(froc if froc else f"FROC not computed: {report.froc.reason if report.froc else '-'}")
    if report.subgroups is not None:
        worse = report.subgroups.worse()
        names = ", ".join(f"{s.column}={s.name}" for s in worse) or "none"
        print(f"subgroups wholly below the overall estimate on some metric: {names}")
    print(f"report -> {written['json'].parent} ({', '.join(p.name for p in written.values())})")
    return 0
