import json

import nibabel as nib
import numpy as np
import pytest
from tiny import synthesize_phantom

from tumorsynth.errors import InputError
from tumorsynth.io.nifti import save_volume
from tumorsynth.phantom import make_phantom
from tumorsynth.pipelines.batch import BatchSettings
from tumorsynth.pipelines.export import export_nnunet
from tumorsynth.pipelines.synthesize import TumorRequest


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    healthy, real = root / "healthy", root / "real"
    for i in range(2):
        ct, seg = make_phantom(i, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
        save_volume(ct, healthy / "imagesTr" / f"h{i}_0000.nii.gz")
        save_volume(seg, healthy / "labelsTr" / f"h{i}.nii.gz")
    ct, seg = make_phantom(5, shape=(96, 80, 48), spacing_mm=(4.0, 4.0, 5.0))
    out = synthesize_phantom((ct, seg), count=1, size="medium")
    save_volume(ct, real / "imagesTr" / "r0_0000.nii.gz", array=out.image)
    save_volume(seg, real / "labelsTr" / "r0.nii.gz", array=out.label)  # tumorsynth labels
    return healthy, real


def test_mixed_export_is_a_valid_nnunet_dataset(folders, tmp_path):
    healthy, real = folders
    settings = BatchSettings((TumorRequest("liver", 1, "small"),), label_map="phantom", per_case=2)
    result = export_nnunet(
        tmp_path / "Dataset101_Mixed",
        settings,
        healthy=healthy,
        real=real,
        real_label_map="tumorsynth",
        progress=False,
    )
    assert (result.synthetic_cases, result.real_cases) == (4, 1)
    folder = result.folder
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
    assert images == [n.replace(".nii.gz", "_0000.nii.gz") for n in labels]
    assert "real_r0_0000.nii.gz" in images and "h0_syn1_0000.nii.gz" in images
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 5 and meta["file_ending"] == ".nii.gz"
    assert meta["channel_names"] == {"0": "CT"}
    assert meta["labels"]["liver_tumor"] == 2 and meta["labels"]["background"] == 0
    real_label = np.asanyarray(nib.load(str(folder / "labelsTr" / "real_r0.nii.gz")).dataobj)
    assert set(np.unique(real_label)) <= {0, 1, 2, 3, 5, 7, 9, 11}  # phantom organs, output ids
    assert (real_label == 2).any()
    source = (real / "imagesTr" / "r0_0000.nii.gz").read_bytes()
    assert (folder / "imagesTr" / "real_r0_0000.nii.gz").read_bytes() == source


def test_folder_name_must_follow_nnunet(folders, tmp_path):
    healthy, _ = folders
    settings = BatchSettings((TumorRequest("liver", 1, "small"),), label_map="phantom")
    with pytest.raises(InputError, match="DatasetNNN_Name"):
        export_nnunet(tmp_path / "my_dataset", settings, healthy=healthy, progress=False)
    assert not (tmp_path / "my_dataset").exists()
