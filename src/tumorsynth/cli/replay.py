"""``tumorsynth replay MANIFEST --out DIR``: reproduce a batch's tumors voxel for voxel."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", help="DIR/manifest.jsonl of a synthesize run")
    parser.add_argument("--out", metavar="DIR", help="empty output folder")
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="diffusion tumors: the model folder (default: the path the records name)",
    )
    parser.add_argument("--device", default="auto", help="diffusion tumors: auto, cpu, cuda")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.replay import replay_manifest

    if not args.manifest or not args.out:
        raise InputError("replay", "expected MANIFEST and --out DIR")
    options = {"diffusion": {"device": args.device}}
    if args.checkpoint:
        options["diffusion"]["checkpoint"] = args.checkpoint
    records = replay_manifest(
        args.manifest, args.out, progress=not args.no_progress, generator_options=options
    )
    print(f"replayed {len(records)} tumors -> {args.out}")
    return 0
