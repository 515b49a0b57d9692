"""``tumorsynth preview``: PNG montages (axial and coronal through each tumor, W400 L40)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", help="DIR/manifest.jsonl of a synthesize run")
    parser.add_argument("--image", help="or: a CT ...")
    parser.add_argument("--label", help="... and its label holding tumors")
    parser.add_argument("--label-map", default="tumorsynth", help="label map of --label")
    parser.add_argument(
        "--out", metavar="DIR", help="folder for the PNGs (default DIR/previews, or beside --image)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.batch import preview_manifest
    from tumorsynth.pipelines.preview import preview_labelled_scan

    if args.manifest:
        written = preview_manifest(args.manifest, args.out)
    elif args.image and args.label:
        out = Path(args.out) if args.out else Path(args.image).parent
        written = [preview_labelled_scan(args.image, args.label, args.label_map, out)]
    else:
        raise InputError("preview", "expected MANIFEST, or --image CT --label SEG")
    for path in written:
        print(path)
    return 0
