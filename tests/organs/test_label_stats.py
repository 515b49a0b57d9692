"""Per-id measurements of a label file (volume, extent, centroid, cut), against hand counts."""

from __future__ import annotations

import numpy as np

from tumorsynth.organs.label_stats import measure_label


def test_measurements_match_hand_counts_for_every_dtype_and_memory_order() -> None:
    label = np.zeros((30, 24, 10), np.uint8)
    label[3:9, 0:12, 2:5] = 2  # 6 x 12 x 3 voxels, touching the edge of axis 1
    label[20:28, 10:20, 4:10] = 7  # 8 x 10 x 6, touching the last slice
    affine = np.diag([2.0, 2.0, 3.0, 1.0])  # sampled every voxel (3 mm // 2 mm = 1)
    for array in (label, label.astype(np.uint16), label.astype(np.int32), np.asfortranarray(label)):
        stats = measure_label(array, affine)
        assert stats.ids.tolist() == [2, 7]
        assert stats.counts.tolist() == [216, 480]
        assert np.allclose(stats.volume_ml, [216 * 12 / 1000, 480 * 12 / 1000])
        assert stats.cut.tolist() == [True, True]
        assert np.allclose(stats.box_mm[0], [[6, 0, 6], [16, 22, 12]])
        centre = np.array([14.5, 11.5, 4.5])  # the field of view's centre (no image)
        expected = (np.array([[5.5, 5.5, 3.0], [23.5, 14.5, 6.5]]) - centre) * [2, 2, 3]
        assert np.allclose(stats.centroid_mm, expected)
