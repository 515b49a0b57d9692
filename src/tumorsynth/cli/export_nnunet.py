"""``tumorsynth export-nnunet``: a synthetic (or mixed) dataset in nnU-Net v2 raw format."""

from __future__ import annotations

import argparse

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--healthy", metavar="DIR", help="healthy scans with organ labels")
    parser.add_argument(
        "--label-map",
        default=None,
        help="label map of --healthy (required: a preset such as totalsegmentator or msd, or a "
        "JSON file; without it, tumorsynth says which preset the labels look like)",
    )
    parser.add_argument("--real", metavar="DIR", help="optional: scans with real tumors to add")
    parser.add_argument(
        "--real-label-map",
        help="label map of --real (required with it; without it, tumorsynth says which preset "
        "the labels look like)",
    )
    parser.add_argument(
        "--organ",
        default="liver",
        help="organ(s) to put tumors in, comma-separated: liver, pancreas, kidney, colon, "
        "esophagus, uterus (dataset.json always lists all six and their tumors)",
    )
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument(
        "--size", default="mixed", choices=("tiny", "small", "medium", "large", "mixed")
    )
    parser.add_argument("--per-case", type=int, default=1, metavar="K")
    parser.add_argument(
        "--generator",
        default=DEFAULT_GENERATOR,
        help=f"appearance generator (default {DEFAULT_GENERATOR})",
    )
    add_generator_options(parser)
    add_filter_options(parser)
    add_seed(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", metavar="DatasetNNN_Name", help="output dataset folder")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.generators import get_generator
    from tumorsynth.io.datasets import discover_cases
    from tumorsynth.organs import get_profile
    from tumorsynth.pipelines.batch import BatchSettings
    from tumorsynth.pipelines.case_check import require_label_map
    from tumorsynth.pipelines.export import export_nnunet
    from tumorsynth.pipelines.synthesize import TumorRequest

    if not args.out:
        raise InputError("--out", "the dataset folder (DatasetNNN_Name) is required")
    organs = split_organs(args.organ)
    for organ in organs:
        get_profile(organ)
    label_map = args.label_map
    if not label_map and args.healthy:
        label_map = require_label_map(None, discover_cases(args.healthy), organs)
    settings = BatchSettings(
        tuple(TumorRequest(o, args.count, args.size) for o in organs),
        label_map=str(label_map) if label_map else "",
        generator=args.generator,
        seed=int(args.seed),
        per_case=int(args.per_case),
        generator_options=generator_options(args),
        filter=filter_settings(args) if args.healthy else None,
    )
    get_generator(settings.generator, **settings.generator_options)  # fails before any output
    real_label_map = args.real_label_map
    if args.real:
        real_label_map = require_label_map(
            real_label_map, discover_cases(args.real), organs, flag="--real-label-map"
        )
    result = export_nnunet(
        args.out,
        settings,
        healthy=args.healthy,
        real=args.real,
        real_label_map=real_label_map,
        organs=organs,
        workers=int(args.workers),
        progress=not args.no_progress,
    )
    print(
        f"{result.folder}: {result.synthetic_cases} synthetic and {result.real_cases} real cases "
        "(nnU-Net v2 raw; dataset.json written)"
    )
    if settings.filter is not None:
        print_acceptance(result.folder)
    return 0
