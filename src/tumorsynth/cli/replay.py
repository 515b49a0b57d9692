"""``tumorsynth replay MANIFEST --out DIR``: reproduce a batch's tumors voxel for voxel, checked."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", nargs="?", help="DIR/manifest.jsonl of a synthesize run")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder: empty, or a failed replay of the same manifest to resume",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="learned generators: the model folder, when it moved (default: the path the "
        "records name; its files must have the recorded hashes)",
    )
    parser.add_argument(
        "--device", default=None, help="learned generators: auto, cpu, cuda (default auto)"
    )
    parser.add_argument(
        "--verify-filter",
        nargs="?",
        const=True,
        default=False,
        metavar="DIR",
        help="score the replayed tumors again with the quality filter their records name (DIR: "
        "the segmentor folder, when it moved); a changed verdict is refused",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.replay import replay_manifest

    if not args.manifest or not args.out:
        raise InputError("replay", "expected MANIFEST and --out DIR")
    result = replay_manifest(
        args.manifest,
        args.out,
        progress=not args.no_progress,
        checkpoint=args.checkpoint,
        device=args.device,
        verify_filter=args.verify_filter,
    )
    skipped = (
        f" ({result.variants_skipped} variants already done)" if result.variants_skipped else ""
    )
    print(f"replayed {len(result.records)} tumors -> {args.out}{skipped}")
    verified = [r.filter_verdict for r in result.records if r.filter_verdict]
    if args.verify_filter and verified:
        drift = max(abs(v["verified_score"] - v["score"]) for v in verified)
        print(
            f"filter verified: {len(verified)} verdicts unchanged (largest score change {drift:.4f})"
        )
    return 0
