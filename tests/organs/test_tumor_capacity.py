"""Requests whose smallest tumors cannot fit in the organ's measured volume are refused at once."""

from __future__ import annotations

import pytest

from tumorsynth.errors import InputError
from tumorsynth.io.label_maps import PRESETS
from tumorsynth.organs.label_stats import measure_label
from tumorsynth.organs.tumor_capacity import check_tumor_capacity


def test_capacity_refuses_what_cannot_fit_and_says_what_does(phantom) -> None:
    ct, seg = phantom
    stats = measure_label(seg.array, seg.affine, ct.array)
    lmap = PRESETS["phantom"]
    check_tumor_capacity(stats, lmap, [("liver", 3, "large"), ("kidney", 2, "small")])
    with pytest.raises(InputError) as info:
        check_tumor_capacity(stats, lmap, [("liver", 500, "large")], where="seg.nii.gz")
    text = str(info.value)
    assert "seg.nii.gz" in text and "500 large tumors cannot fit in the liver" in text
    fits = int(text.split("at most ")[-1].split(" fit")[0])
    assert 1 <= fits < 500 and f"--count {fits}" in text and "upper bound" in text
