"""Peak memory of ``tumorsynth predict`` on one large CT (issue 13, "Scans as large as users have").

Usage: .venv/bin/python benchmarks/bench_predict_memory.py [--shape 512 512 900]
       [--spacing 0.8 0.8 1.0] [--model tiny|default] [--save-probabilities] [--keep DIR]
       [--baseline OLD_PREDICT_PY] [--device cpu|cuda]

``--baseline`` also measures another ``predict.py`` on the same files, for a before/after on one
machine, e.g. ``git show COMMIT:src/tumorsynth/pipelines/predict.py > /tmp/old_predict.py``.

Writes a synthetic CT (int16, LPS like a DICOM export, a body of soft tissue with an organ and a
few hypodense blobs in it) and a segmentor checkpoint with seeded random weights (``default``:
the ``SegmentorConfig`` defaults, a 5-level UNet on 96^3 patches at 1.5 mm; ``tiny``: the same
geometry with 8/16/32 channels, so that a 512 x 512 x 900 scan runs in minutes on 2 cores; the
memory the prediction needs for the scan does not depend on the channels). Then, each in a fresh
process, :func:`~tumorsynth.pipelines.predict.predict_files` predicts

1. a reference CT of 2 x 2 x 1 patches at the network spacing (one batch of 4 windows): its peak
   RSS is Python, torch, the model and a batch of windows (what the target calls "the model");
2. the large CT: its peak RSS (``ru_maxrss``: resident set, the whole process, loading and
   writing the NIfTI files included) minus the reference peak, in units of the CT's float32 size.

Target (issue 13): at most 4x the image's float32 size plus the model. Prints markdown.

``--device cuda`` predicts on the GPU (both CTs); the table then also has each prediction's peak
GPU memory (``torch.cuda.max_memory_allocated``: tensors, the model's weights included, and
``max_memory_reserved``: what the caching allocator held), the large CT's in units of the image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIB = 2**20


def synthetic_ct(path: Path, shape: tuple[int, int, int], spacing_mm: tuple[float, ...]) -> None:
    """An int16 CT in HU: air, a body cylinder (40 HU, noise 12 HU), an organ ellipsoid (110 HU)
    with hypodense blobs (60 HU); written slice block by slice block to stay small."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    nx, ny, nz = shape
    x, y = np.meshgrid(
        (np.arange(nx) - nx / 2) / (0.45 * nx),
        (np.arange(ny) - ny / 2) / (0.4 * ny),
        indexing="ij",
    )
    body = x**2 + y**2 < 1
    data = np.empty(shape, dtype=np.int16, order="F")
    for start in range(0, nz, 64):
        stop = min(start + 64, nz)
        z = (np.arange(start, stop) - nz / 2) / (0.35 * nz)
        organ = ((x[..., None] + 0.3) / 0.45) ** 2 + (y[..., None] / 0.5) ** 2 + z**2 < 1
        blobs = ((x[..., None] + 0.35) / 0.08) ** 2 + (y[..., None] / 0.08) ** 2 + (
            (z - 0.2) / 0.15
        ) ** 2 < 1
        hu = np.where(body[..., None], 40.0, -1000.0)
        hu = np.where(organ, 110.0, hu)
        hu = np.where(organ & blobs, 60.0, hu)
        hu += rng.normal(0.0, 12.0, hu.shape)
        data[..., start:stop] = np.clip(hu, -1024, 3000).astype(np.int16)
    affine = np.diag([-spacing_mm[0], -spacing_mm[1], spacing_mm[2], 1.0])  # LPS
    nib.save(nib.Nifti1Image(data, affine), str(path))


def segmentor_checkpoint(folder: Path, model: str) -> Path:
    import torch

    from tumorsynth.models.segmentors import SegmentorConfig, build_segmentor, save_segmentor

    channels = (8, 16, 32) if model == "tiny" else SegmentorConfig().channels
    config = SegmentorConfig(channels=channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_segmentor(config)
    stored = {
        "model": config.to_dict(),
        "organ": "liver",
        "spacing_mm": list(config.spacing_mm),
        "hu_window": [-175.0, 250.0],
        "patch_size": list(config.patch_size),
    }
    save_segmentor(net, stored, folder)
    return folder


@dataclass(frozen=True)
class Version:
    """One row of the table: a predict.py (None: the installed one) and its options."""

    name: str
    module: Path | None = None
    save_probabilities: bool = False


def child(args: argparse.Namespace) -> None:
    """One prediction in this process; prints its peak RSS and time as JSON."""
    import importlib.util

    import torch

    from tumorsynth.pipelines import predict

    if args.module:  # another version of tumorsynth/pipelines/predict.py
        spec = importlib.util.spec_from_file_location("baseline_predict", args.module)
        assert spec and spec.loader, args.module
        predict = importlib.util.module_from_spec(spec)  # type: ignore[assignment]
        sys.modules[spec.name] = predict  # dataclasses look their module up there
        spec.loader.exec_module(predict)
    predict_files = predict.predict_files
    torch.set_num_threads(args.threads or torch.get_num_threads())
    options = {"save_probabilities": True} if args.save_probabilities else {}
    cuda = args.device.startswith("cuda")
    if cuda:  # a fresh process: its peak is the prediction's (init first: stats need it)
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(args.device)
    start = time.perf_counter()
    predict_files(
        args.checkpoint, args.image, args.out, device=args.device, progress=False, **options
    )
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {"peak_mib": peak_kib / 1024, "seconds": seconds}
    if cuda:
        result["gpu_allocated_mib"] = torch.cuda.max_memory_allocated(args.device) / MIB
        result["gpu_reserved_mib"] = torch.cuda.max_memory_reserved(args.device) / MIB
    print(json.dumps(result))


def measure(
    checkpoint: Path, image: Path, out: Path, args: argparse.Namespace, version: Version
) -> dict:
    command = [sys.executable, __file__, "--child", "--checkpoint", str(checkpoint)]
    command += ["--module", str(version.module)] if version.module else []
    command += ["--image", str(image), "--out", str(out)]
    command += ["--save-probabilities"] if version.save_probabilities else []
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 900])
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.0])
    parser.add_argument("--model", choices=["tiny", "default"], default="tiny")
    parser.add_argument("--save-probabilities", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--baseline", type=Path, help="another predict.py to measure as well")
    parser.add_argument("--device", default="cpu", help="where to predict: cpu, cuda, cuda:N")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    shape = tuple(args.shape)
    spacing = tuple(args.spacing)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = segmentor_checkpoint(work / "checkpoint", args.model)
        # 168 x 168 x 96 voxels at 1.5 mm: 2 x 2 x 1 windows of 96^3 (overlap 0.25), one batch
        extent = [int(np.ceil(n * 1.5 / s)) for n, s in zip((168, 168, 96), spacing, strict=True)]
        synthetic_ct(work / "reference.nii.gz", (extent[0], extent[1], extent[2]), spacing)
        synthetic_ct(work / "large.nii.gz", shape, spacing)  # type: ignore[arg-type]
        versions = [Version("this version", None, args.save_probabilities)]
        if args.baseline:  # a baseline before issue 13 has no --save-probabilities
            versions.append(Version(f"baseline ({args.baseline.name})", args.baseline))
        results = {}
        for version in versions:
            reference = measure(checkpoint, work / "reference.nii.gz", work / "ref", args, version)
            large = measure(checkpoint, work / "large.nii.gz", work / "large", args, version)
            results[version] = (reference, large)
    image_mib = float(np.prod(shape)) * 4 / MIB
    print(f"## Prediction memory: {' x '.join(map(str, shape))} CT at {spacing} mm")
    print()
    cuda = args.device.startswith("cuda")
    print(
        f"{args.model} UNet (96^3 patches at 1.5 mm), {gpu_name(args.device) if cuda else 'CPU'}; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"image as float32: {image_mib:.0f} MiB"
    )
    print()
    gpu_header = (
        " GPU allocated: reference / large (MiB) | large GPU / image | GPU reserved (MiB) |"
    )
    print(
        "| version | probabilities | reference peak (MiB) | large CT peak (MiB) | "
        "above reference / image | peak / image | time (s) |" + (gpu_header if cuda else "")
    )
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if cuda else ""))
    for version, (reference, large) in results.items():
        extra = large["peak_mib"] - reference["peak_mib"]
        gpu_cells = ""
        if cuda:
            gpu_cells = (
                f" {reference['gpu_allocated_mib']:.0f} / {large['gpu_allocated_mib']:.0f} "
                f"| {large['gpu_allocated_mib'] / image_mib:.2f}x "
                f"| {large['gpu_reserved_mib']:.0f} |"
            )
        print(
            f"| {version.name} | {'saved' if version.save_probabilities else 'no'} "
            f"| {reference['peak_mib']:.0f} | {large['peak_mib']:.0f} "
            f"| {extra / image_mib:.2f}x | {large['peak_mib'] / image_mib:.2f}x "
            f"| {large['seconds']:.1f} |" + gpu_cells
        )
    print()
    print(
        "target: at most 4x the image above the reference (Python, torch, model, one window batch)"
    )
    if cuda:
        print(
            "GPU: peak memory allocated by torch in the prediction (the model's weights "
            "included); target at most 4x the image plus the model"
        )


def gpu_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(torch.device(device))


if __name__ == "__main__":
    main()
