"""``tumorsynth replay MANIFEST --out DIR``: reproduce a batch's tumors voxel for voxel."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", help="DIR/manifest.jsonl of a synthesize run")
    parser.add_argument("--out", metavar="DIR", help="empty output folder")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.replay import replay_manifest

    if not args.manifest or not args.out:
        raise InputError("replay", "expected MANIFEST and --out DIR")
    records = replay_manifest(args.manifest, args.out, progress=not args.no_progress)
    print(f"replayed {len(records)} tumors -> {args.out}")
    return 0
