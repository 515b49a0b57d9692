"""Prepare .gpu/ for benchmarks/gpu_run.sh: the shared CTs cropped around their labelled organs
(so that the device transfer stays under 64 MiB) and the wheels the GPU image lacks.

Usage (here, not on the device):
    .venv/bin/python benchmarks/prepare_gpu_data.py [--data ../shared/data]
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/whl \
        monai==1.6.1 nibabel==5.4.2 connected-components-3d==4.1.1 edt==3.1.2
Then: run(command="bash benchmarks/gpu_run.sh", carry=[".gpu"]). `.gpu/` must be git-excluded
(`echo /.gpu/ >> .git/info/exclude`); never commit it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from tumorsynth.box import Box
from tumorsynth.io import load_image, load_label, save_volume
from tumorsynth.io.nifti import Volume

REPO = Path(__file__).resolve().parents[1]


def crop_case(
    ct: Volume, seg: Volume, ids: list[int], margin_mm: float, image_out: Path, label_out: Path
) -> tuple[int, ...]:
    """Crop to the labelled ids' bounding box plus ``margin_mm``, keeping world coordinates."""
    pad = tuple(int(margin_mm / s) for s in ct.spacing_mm)
    return crop_box(
        ct, seg, Box.of_mask(np.isin(seg.array, ids), margin=pad).slices, image_out, label_out
    )


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    data, out = Path(args.data), REPO / ".gpu" / "data"
    p07 = data / "ircadb01_p07"
    print(
        crop_case(
            load_image(p07 / "ircadb01_p07_ct.nii.gz"),
            load_label(p07 / "ircadb01_p07_label.nii.gz"),
            [1, 5],
            25.0,
            out / "Dataset001_P07/imagesTr/p07_0000.nii.gz",
            out / "Dataset001_P07/labelsTr/p07.nii.gz",
        )
    )
    p17 = data / "ircadb01_p17"
    print(
        crop_case(
            load_image(p17 / "ircadb01_p17_ct.nii.gz"),
            load_label(p17 / "ircadb01_p17_label.nii.gz"),
            [1, 2],
            25.0,
            out / "test/p17_0000.nii.gz",
            out / "test_labels/p17.nii.gz",
        )
    )
    ts = data / "totalseg_example"
    for sub in ("imagesTr", "labelsTr"):
        (out / "Dataset002_TS" / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(ts / "example_ct_sm.nii.gz", out / "Dataset002_TS/imagesTr/ts_0000.nii.gz")
    shutil.copy(ts / "example_seg.nii.gz", out / "Dataset002_TS/labelsTr/ts.nii.gz")


if __name__ == "__main__":
    main()
