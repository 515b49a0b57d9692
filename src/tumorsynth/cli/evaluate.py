"""``tumorsynth evaluate``: predicted label maps against ground truth -> report.json/.md, plots."""

from __future__ import annotations

import argparse
import math
import warnings

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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


#: Cases read up front to check both label maps against the files' ids (spread over the list).
MAP_CHECK_CASES = 8


def check_maps_against_files(
    pred_dir: str, gt_dir: str, gt_map: str, pred_map: str | None, organ: str
) -> None:
    """Refuse label maps that cannot describe the files (e.g. ground truth in KiTS ids read with
    ``tumorsynth``, or predictions in another convention than ``--pred-label-map``); warn about
    ids a map does not define. Reads up to :data:`MAP_CHECK_CASES` pairs."""
    import numpy as np

    from tumorsynth.evaluation.report import pair_cases, tumor_ids_for
    from tumorsynth.io.label_maps import check_ids_fit_map, label_ids, resolve_label_map
    from tumorsynth.io.nifti import load_label

    maps = {"--label-map": resolve_label_map(gt_map)}
    maps["--pred-label-map"] = resolve_label_map(pred_map) if pred_map else maps["--label-map"]
    pairs = pair_cases(pred_dir, gt_dir)
    picks = sorted({round(i) for i in np.linspace(0, len(pairs) - 1, MAP_CHECK_CASES)})
    present: dict[str, dict[str, set[int]]] = {"--label-map": {}, "--pred-label-map": {}}
    for i in picks:
        _, pred_path, gt_path = pairs[i]
        for flag, path in (("--pred-label-map", pred_path), ("--label-map", gt_path)):
            present[flag][str(path)] = label_ids(load_label(path).array)
    for flag in ("--label-map", "--pred-label-map"):
        where = flag if flag == "--label-map" or pred_map else "--label-map (for --pred)"
        for text in check_ids_fit_map(
            present[flag], maps[flag], tumor_ids_for(maps[flag], organ), flag=where, organ=organ
        ):
            warnings.warn(text, stacklevel=2)


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.evaluation.report import evaluate_folders, write_report

    for flag, value in (("--pred", args.pred), ("--gt", args.gt), ("--out", args.out)):
        if not value:
            raise InputError(flag, "is required", fix=f"pass {flag} DIR")
    if not args.label_map:
        raise InputError(
            "--label-map", "is required: which label ids are tumor", fix="e.g. --label-map lits"
        )
    check_maps_against_files(
        args.pred, args.gt, str(args.label_map), args.pred_label_map, str(args.organ)
    )
    report = evaluate_folders(
        args.pred,
        args.gt,
        label_map_gt=str(args.label_map),
        label_map_pred=str(args.pred_label_map) if args.pred_label_map else None,
        organ=str(args.organ),
        nsd_tolerance_mm=float(args.tolerance_mm),
        patient_threshold_mm3=float(args.patient_threshold_mm3),
        min_radius_mm=float(args.min_radius_mm),
        n_bootstrap=int(args.bootstrap),
        seed=int(args.seed),
        workers=int(args.workers),
        progress=not args.no_progress,
    )
    written = write_report(report, args.out, plots=not args.no_plots)
    s = report.summary
    print(
        f"{s['n_cases']} cases ({s['n_tumor_cases']} with tumor, {s['n_controls']} controls): "
        f"DSC {_fmt(s['dsc_mean'])}, NSD@{args.tolerance_mm:g}mm {_fmt(s['nsd_mean'])}, "
        f"lesion sensitivity {_fmt(s['lesion_sensitivity'])} ({s['n_detected']}/{s['n_lesions']}), "
        f"early-stage {_fmt(s['early_stage_sensitivity'])}, FP components/case "
        f"{_fmt(s['fp_per_case'])}, patient sensitivity {_fmt(s['patient_sensitivity'])}, "
        f"specificity {_fmt(s['patient_specificity'])}"
    )
    print(f"report -> {written['json'].parent} ({', '.join(p.name for p in written.values())})")
    return 0
