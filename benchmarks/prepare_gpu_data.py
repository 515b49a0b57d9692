"""Prepare .gpu/ for the benchmarks/gpu_*.sh runs: the shared CTs cropped around their labelled
organs (so that the device transfer stays under 64 MiB), where IRCAD 1.17's crop starts in the
full scan (``p17_crop.json``, for benchmarks/scaling_shared.py --gpu-data), and with ``--wheels``
the wheels the GPU image lacks (:data:`WHEELS`: tumorsynth's, and dask's for bench_dask.py).

Usage (here, not on the device):
    .venv/bin/python benchmarks/prepare_gpu_data.py [--data ../shared/data] [--wheels]
``--wheels`` runs ``python -m pip download --no-deps --only-binary=:all: --python-version 3.12
--platform manylinux... -d .gpu/whl`` for :data:`WHEELS` (about 16 MB; with the data about 54 MiB).
Then: run(command="bash benchmarks/gpu_run.sh", carry=[".gpu"]). `.gpu/` must be git-excluded
(`echo /.gpu/ >> .git/info/exclude`); never commit it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tumorsynth.box import Box
from tumorsynth.io import load_image, load_label, save_volume
from tumorsynth.io.nifti import Volume

REPO = Path(__file__).resolve().parents[1]

#: What the device's Python (3.12, torch, numpy, scipy, dask's own needs such as cloudpickle,
#: toolz, msgpack, psutil) lacks: tumorsynth's dependencies, and dask.distributed's.
WHEELS = (
    "monai==1.6.1",
    "nibabel==5.4.2",
    "connected-components-3d==4.1.1",
    "edt==3.1.2",
    "dask==2026.8.0",
    "distributed==2026.8.0",
    "partd==1.4.2",
    "locket==1.0.0",
    "tblib==3.2.2",
    "tornado==6.6.1",
    "zict==3.0.0",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64")


def crop_case(
    ct: Volume, seg: Volume, ids: list[int], margin_mm: float, image_out: Path, label_out: Path
) -> tuple[slice, ...]:
    """Crop to the labelled ids' bounding box plus ``margin_mm``, keeping world coordinates;
    returns the box (voxel slices of the full scan)."""
    pad = tuple(int(margin_mm / s) for s in ct.spacing_mm)
    box = Box.of_mask(np.isin(seg.array, ids), margin=pad).slices
    crop_box(ct, seg, box, image_out, label_out)
    return box


def crop_box(
    ct: Volume, seg: Volume, box: tuple[slice, ...], image_out: Path, label_out: Path
) -> tuple[int, ...]:
    """Write the CT and label inside ``box`` (voxel slices), keeping world coordinates."""
    affine = ct.affine.copy()
    affine[:3, 3] = ct.affine[:3, :3] @ np.array([b.start or 0 for b in box]) + ct.affine[:3, 3]
    sl = tuple(box)
    save_volume(
        Volume(ct.array[sl], affine, ct.header), image_out, array=np.asfortranarray(ct.array[sl])
    )
    save_volume(
        Volume(seg.array[sl], affine, seg.header), label_out, array=np.asfortranarray(seg.array[sl])
    )
    return ct.array[sl].shape


def download_wheels(folder: Path) -> None:
    """The wheels of :data:`WHEELS` for the device's CPython 3.12 on x86-64 Linux, into
    ``folder`` (emptied first: two versions of one package stop the install there)."""
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
    command += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    command += [f"--platform={name}" for name in PLATFORMS]
    subprocess.run([*command, "-d", str(folder), *WHEELS], check=True)


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def box_shape(box: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(int(b.stop - b.start) for b in box)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--wheels", action="store_true", help="also download WHEELS to .gpu/whl")
    args = parser.parse_args()
    data, out = Path(args.data), REPO / ".gpu" / "data"
    p07 = data / "ircadb01_p07"
    box = crop_case(
        load_image(p07 / "ircadb01_p07_ct.nii.gz"),
        load_label(p07 / "ircadb01_p07_label.nii.gz"),
        [1, 5],
        25.0,
        out / "Dataset001_P07/imagesTr/p07_0000.nii.gz",
        out / "Dataset001_P07/labelsTr/p07.nii.gz",
    )
    print(box_shape(box))
    p17 = data / "ircadb01_p17"
    box = crop_case(
        load_image(p17 / "ircadb01_p17_ct.nii.gz"),
        load_label(p17 / "ircadb01_p17_label.nii.gz"),
        [1, 2],
        25.0,
        out / "test/p17_0000.nii.gz",
        out / "test_labels/p17.nii.gz",
    )
    print(box_shape(box))
    # where the crop lies in the full scan: scaling_shared.py cuts its study data from the crop
    (out / "p17_crop.json").write_text(
        json.dumps({"case": "ircadb01_p17", "start_voxel": [int(b.start) for b in box]}) + "\n"
    )
    ts = data / "totalseg_example"
    for sub in ("imagesTr", "labelsTr"):
        (out / "Dataset002_TS" / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(ts / "example_ct_sm.nii.gz", out / "Dataset002_TS/imagesTr/ts_0000.nii.gz")
    shutil.copy(ts / "example_seg.nii.gz", out / "Dataset002_TS/labelsTr/ts.nii.gz")
    if args.wheels:
        download_wheels(REPO / ".gpu" / "whl")
    print(f".gpu: {size_mib(REPO / '.gpu'):.1f} MiB (the device takes 64 MiB with the tree)")


if __name__ == "__main__":
    main()
