"""``tumorsynth predict``: segment CTs with a trained checkpoint, output on the input's grid."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="checkpoint folder (config.json + model.safetensors), e.g. runs/NAME/checkpoints/best",
    )
    parser.add_argument("--input", metavar="CT_OR_DIR", help="a CT or a folder of CTs")
    parser.add_argument("--out", metavar="DIR", help="output folder for <case>.nii.gz labels")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap")
    parser.add_argument(
        "--organ-mask", metavar="SEG_OR_DIR", help="keep tumors only within 5 mm of this organ mask"
    )
    parser.add_argument("--organ-mask-label-map", default="totalsegmentator")
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write each tumor class's probability as OUT/probabilities/"
        "<case>_<organ>_tumor.nii.gz (uint8, round(255 * p), the labels' grid and affine)",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tumorsynth.errors import InputError
    from tumorsynth.pipelines.predict import predict_files

    if not (args.checkpoint and args.input and args.out):
        raise InputError("predict", "expected --checkpoint DIR --input CT_OR_DIR --out DIR")
    if not 0.0 <= args.overlap < 1.0:
        raise InputError("--overlap", f"expected a fraction in [0, 1), found {args.overlap}")
    written = predict_files(
        args.checkpoint,
        args.input,
        args.out,
        device=args.device,
        overlap=args.overlap,
        organ_masks=args.organ_mask,
        organ_mask_label_map=args.organ_mask_label_map,
        save_probabilities=args.save_probabilities,
        progress=not args.no_progress,
    )
    for path, seconds in written:
        print(f"{path}  ({seconds:.1f} s)")
    return 0
