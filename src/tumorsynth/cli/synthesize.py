"""``tumorsynth synthesize``: tumors into one CT (--image/--label) or a dataset (--dataset)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tumorsynth import DEFAULT_GENERATOR
from tumorsynth.cli._common import (
    add_filter_options,
    add_generator_options,
    add_seed,
    filter_settings,
    generator_options,
    print_acceptance,
    split_organs,
)

SIZES = ("tiny", "small", "medium", "large", "mixed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", metavar="CT", help="one CT (NIfTI or DICOM folder)")
    parser.add_argument(
        "--label",
        metavar="SEG",
        help="its organ labels (file or AbdomenAtlas segmentations/ folder)",
    )
    parser.add_argument(
        "--dataset",
        metavar="DIR",
        help="a dataset folder instead (nnU-Net v2, MSD or AbdomenAtlas layout)",
    )
    parser.add_argument(
        "--layout", default="auto", choices=("auto", "nnunet", "msd", "abdomenatlas")
    )
    parser.add_argument(
        "--label-map",
        default=None,
        metavar="PRESET_OR_JSON",
        help="required: totalsegmentator, msd, lits, kits, abdomenatlas, tumorsynth, phantom, "
        'or a JSON file like {"liver": 1, "kidney": [2, 3]} (without it, tumorsynth says which '
        "preset the label looks like)",
    )
    parser.add_argument(
        "--organ",
        default="liver",
        help="liver, pancreas, kidney, colon, esophagus, uterus, or several separated by commas",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="tumors per organ (default: drawn from the size class's range)",
    )
    parser.add_argument(
        "--size",
        default="small",
        choices=SIZES,
        help="size class: tiny 4, small 8, medium 16, large 32 mm base radius",
    )
    parser.add_argument(
        "--generator",
        default=DEFAULT_GENERATOR,
        help=f"appearance generator: {DEFAULT_GENERATOR} (default), or a learned one with "
        "--checkpoint",
    )
    add_generator_options(parser)
    add_seed(parser)
    parser.add_argument(
        "--exclude-label",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="keep tumors away from the voxels of this id of the input label (real tumors, "
        "cysts); repeat for several ids",
    )
    parser.add_argument(
        "--exclude-margin-mm",
        type=float,
        default=0.0,
        metavar="M",
        help="gap in mm between synthetic tumors and the excluded labels (default 0)",
    )
    add_filter_options(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (nnU-Net v2 layout)")
    parser.add_argument(
        "--per-case",
        type=int,
        default=1,
        metavar="K",
        help="synthetic variants per input case (default 1)",
    )
    parser.add_argument("--workers", type=int, default=1, metavar="W", help="processes")
    parser.add_argument(
        "--dask",
        default=None,
        metavar="CLUSTER",
        help="run the cases on a Dask cluster instead of --workers: local:N (N worker processes "
        "here) or tcp://HOST:PORT (a running scheduler whose workers see --out at the same "
        'path); needs pip install "tumorsynth[dask]"',
    )
    parser.add_argument("--case-id", help="case id for --image (default: from the file name)")
    parser.add_argument("--preview", action="store_true", help="write PNG montages too")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.generators import get_generator
    from tumorsynth.io.datasets import CaseRef, check_distinct_inputs, discover_cases
    from tumorsynth.io.identity import case_id_from, check_case_id, check_folder_apart
    from tumorsynth.organs import registered_organs
    from tumorsynth.pipelines.batch import BatchSettings, run_batch
    from tumorsynth.pipelines.batch_dask import check_dask
    from tumorsynth.pipelines.case_check import require_label_map
    from tumorsynth.pipelines.synthesize import TumorRequest, check_exclusion

    if not args.out:
        raise InputError("--out", "an output folder is required")
    if bool(args.image) == bool(args.dataset):
        raise InputError(
            "--image/--dataset",
            "give exactly one: --image CT --label SEG for one case, or --dataset DIR",
        )
    if args.per_case < 1 or args.workers < 1:
        raise InputError(
            "--per-case/--workers", f"expected >= 1, found {args.per_case}/{args.workers}"
        )
    if args.dask is not None:  # a malformed value, or no dask installed, fails before any work
        check_dask(args.dask, workers=int(args.workers))
    organs = split_organs(args.organ)
    known = registered_organs()
    unknown = [organ for organ in organs if organ not in known]
    if unknown or not organs:
        raise InputError(
            "--organ",
            f"expected one or more of {', '.join(known)} separated by "
            f"commas, found {str(args.organ)!r}",
        )
    if args.count is not None and args.count < 1:
        raise InputError(
            "--count",
            f"expected >= 1 tumor per organ, found {args.count} (a run "
            "without tumors has nothing to record)",
        )
    # A --config may give one id or a list of them.
    exclude = args.exclude_label if isinstance(args.exclude_label, list) else [args.exclude_label]
    check_exclusion(
        exclude, args.exclude_margin_mm, names=("--exclude-label", "--exclude-margin-mm")
    )
    options = generator_options(args)
    get_generator(args.generator, **options)  # a bad checkpoint fails before any output
    requests = tuple(TumorRequest(o, args.count, args.size) for o in organs)
    if args.image:
        if not args.label:
            raise InputError("--label", "--image needs its organ labels (--label SEG)")
        check_distinct_inputs(args.image, args.label)
        cases = [
            CaseRef(
                check_case_id(args.case_id or case_id_from(args.image)),
                Path(args.image),
                Path(args.label),
            )
        ]
    else:
        check_folder_apart(args.out, args.dataset, "--dataset")
        cases = discover_cases(args.dataset, layout=args.layout)
    label_map = require_label_map(args.label_map, cases, organs)
    settings = BatchSettings(
        requests,
        label_map=label_map,
        generator=args.generator,
        seed=int(args.seed),
        per_case=int(args.per_case),
        preview=bool(args.preview),
        generator_options=options,
        exclude_labels=tuple(exclude),
        exclude_margin_mm=float(args.exclude_margin_mm),
        filter=filter_settings(args),
    )
    settings.resolved_label_map()
    settings.check_exclusion()
    result = run_batch(
        cases,
        args.out,
        settings,
        workers=int(args.workers),
        dask=args.dask,
        progress=not args.no_progress,
    )
    print(
        f"{len(result.records)} tumors in {result.variants_done} new case variants -> "
        f"{result.out_dir} (manifest.jsonl"
        + (f"; {result.variants_skipped} already done, skipped" if result.variants_skipped else "")
        + ")"
    )
    if settings.filter is not None:
        print_acceptance(result.out_dir)
    return 0
