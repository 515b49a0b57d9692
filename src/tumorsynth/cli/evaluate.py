"""``tumorsynth evaluate``: predicted label maps against ground truth -> report.json/.md, plots."""

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
        help="liver, pancreas, kidney (any organ of the map) or all tumor ids (default all)",
    )
    parser.add_argument("--out", metavar="DIR", help="folder for report.json, report.md, plots")
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
    from tumorsynth.evaluation import check_label_maps, evaluate_folders, summary_line, write_report

    for flag, value in (("--pred", args.pred), ("--gt", args.gt), ("--out", args.out)):
        if not value:
            raise InputError(flag, "is required", fix=f"pass {flag} DIR")
    if not args.label_map:
        raise InputError(
            "--label-map", "is required: which label ids are tumor", fix="e.g. --label-map lits"
        )
    label_map_gt, organ = str(args.label_map), str(args.organ)
    label_map_pred = str(args.pred_label_map) if args.pred_label_map else None
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
    )
    written = write_report(report, args.out, plots=not args.no_plots)
    print(summary_line(report))
    print(f"report -> {written['json'].parent} ({', '.join(p.name for p in written.values())})")
    return 0
