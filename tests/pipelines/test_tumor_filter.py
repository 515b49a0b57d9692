"""The segmentor-based quality filter: scores on a tumor's own voxels, redraws with derived
seeds, keep/skip after the last attempt, records that replay without the filter, checkpoints.

A stand-in segmentor whose verdict is known makes the accept and reject paths exact: it calls
every voxel darker than a set HU "tumor" (the tumors of the heuristic generator are darker than
the liver by a drawn contrast, so some of them pass and some do not).
"""

import numpy as np
import pytest
import torch
from tiny import constant_segmentor, synthesize_phantom

from tumorsynth.errors import InputError
from tumorsynth.pipelines.synthesize import check_filters, replay_case
from tumorsynth.pipelines.tumor_filter import FilterInput, TumorFilter

WINDOW = (-100.0, 250.0)
CONFIG = {
    "organ": "liver",
    "spacing_mm": [4.0, 4.0, 4.0],
    "hu_window": list(WINDOW),
    "patch_size": [32, 32, 32],
}


class DarkIsTumor(torch.nn.Module):
    """Logits that call a voxel tumor when it is darker than ``below_hu``."""

    def __init__(self, below_hu: float) -> None:
        super().__init__()
        lo, hi = WINDOW
        self.level = torch.nn.Parameter(torch.tensor((below_hu - lo) / (hi - lo)))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        zero = torch.zeros_like(x)
        return torch.cat([zero, zero, 50.0 * (self.level - x)], dim=1)


def dark_filter(below_hu: float, **settings) -> TumorFilter:
    return TumorFilter(DarkIsTumor(below_hu), CONFIG, **settings)


def sphere_case(spacing=(0.8, 0.8, 2.5), affine=None):
    shape = (120, 120, 48)
    grid = np.stack(np.indices(shape), axis=-1) * np.asarray(spacing)
    r = np.linalg.norm(grid - np.asarray(shape) * np.asarray(spacing) / 2, axis=-1)
    tumor = r < 20.0
    image = np.full(shape, 100.0, dtype=np.float32)
    image[tumor] = 40.0
    return image, tumor, spacing, np.diag([*spacing, 1.0]) if affine is None else affine


class TestScore:
    def test_a_tumor_the_segmentor_sees_scores_1_and_one_it_misses_0(self):
        image, tumor, spacing, affine = sphere_case()
        item = FilterInput(image, tumor, spacing, affine)
        # at the segmentor's 4 mm the sphere's edge blurs into its host: a few % of its
        # voxels (0.8 x 0.8 x 2.5 mm) are lost, as a real segmentor at its spacing loses them
        assert dark_filter(70.0).score([item])[0] > 0.9
        assert dark_filter(20.0).score([item]) == [0.0]

    def test_the_score_is_the_fraction_of_the_tumor_called_tumor(self):
        """Half the sphere bright: half its voxels are called tumor, in an LPS scan too."""
        for affine in (None, np.diag([-0.8, -0.8, 2.5, 1.0])):
            image, tumor, spacing, affine = sphere_case(affine=affine)
            image[60:, :, :][tumor[60:, :, :]] = 100.0
            (score,) = dark_filter(70.0).score([FilterInput(image, tumor, spacing, affine)])
            assert score == pytest.approx(0.5, abs=0.05)

    def test_tumors_are_scored_in_batches_of_max_batch(self):
        image, tumor, spacing, affine = sphere_case()
        judge = dark_filter(70.0, max_batch=2)
        scores = judge.score([FilterInput(image, tumor, spacing, affine)] * 5)
        assert judge.model.calls == [2, 2, 1] and len(scores) == 5

    @pytest.mark.parametrize(
        "setting, value, message",
        [
            ("threshold", 1.0, "fraction"),
            ("retries", -1, "count"),
            ("on_fail", "drop", "keep, skip"),
        ],
    )
    def test_bad_settings_are_named(self, setting, value, message):
        with pytest.raises(InputError, match=message):
            dark_filter(70.0, **{setting: value})


def liver_tumors(phantom, judge=None, rng=3, count=4):
    return synthesize_phantom(
        phantom, count=count, size="medium", rng=rng, filters=[judge] if judge else ()
    )


class TestSynthesis:
    def test_tumors_that_pass_keep_their_first_draw(self, phantom):
        plain = liver_tumors(phantom)
        judged = liver_tumors(phantom, dark_filter(1000.0))
        assert np.array_equal(plain.image, judged.image)
        for record in judged.records:
            note = record.filter_verdict
            assert note["verdict"] == "passed" and note["attempts"] == 1 and note["score"] == 1.0

    def test_a_rejected_tumor_is_redrawn_until_it_passes_and_replays_without_the_filter(
        self, phantom
    ):
        plain = liver_tumors(phantom)
        means = sorted(r.tumor_mean_hu for r in plain.records)
        # Darker than most first draws: some tumors need more attempts, a few pass at once.
        cut = means[len(means) // 2] - 1.0
        judge = dark_filter(cut, threshold=0.5, retries=6)
        judged = liver_tumors(phantom, judge)
        attempts = [r.filter_verdict["attempts"] for r in judged.records]
        assert max(attempts) > 1, attempts
        assert all(r.filter_verdict["verdict"] == "passed" for r in judged.records)
        assert len(judged.records) == len(plain.records)
        again = liver_tumors(phantom, dark_filter(cut, threshold=0.5, retries=6))
        assert np.array_equal(again.image, judged.image)
        ct, seg = phantom
        replayed = replay_case(
            ct.array,
            seg.array,
            judged.records,
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            affine=ct.affine,
        )
        assert np.array_equal(replayed.image, judged.image)
        assert np.array_equal(replayed.label, judged.label)

    def test_after_the_last_retry_a_tumor_is_kept_as_rejected_or_left_out(self, phantom):
        kept = liver_tumors(phantom, dark_filter(-500.0, retries=2), count=2)
        assert [r.filter_verdict["verdict"] for r in kept.records] == ["rejected"] * 2
        assert [r.filter_verdict["attempts"] for r in kept.records] == [3, 3]
        skipped = liver_tumors(phantom, dark_filter(-500.0, retries=1, on_fail="skip"), count=2)
        assert skipped.records == [] and not (skipped.label == 2).any()
        assert [t["attempts"] for t in skipped.filtered_out] == [2, 2]
        assert np.array_equal(skipped.image, phantom[0].array)

    def test_a_filter_for_an_organ_without_tumors_or_two_for_one_organ_are_refused(self, phantom):
        kidney = TumorFilter(DarkIsTumor(0.0), {**CONFIG, "organ": "kidney"})
        with pytest.raises(InputError, match="judges kidney tumors"):
            liver_tumors(phantom, kidney)
        with pytest.raises(InputError, match="at most one per organ"):
            check_filters([dark_filter(0.0), dark_filter(1.0)], ["liver"])


class TestCheckpoint:
    def test_a_saved_segmentor_judges_and_records_name_its_files(self, phantom, tmp_path):
        judge = TumorFilter.load(constant_segmentor(tmp_path / "a", 5.0), device="cpu")
        judged = liver_tumors(phantom, judge, count=1)
        note = judged.records[0].filter_verdict
        assert note["verdict"] == "passed" and note["score"] == 1.0
        assert note["weights_sha256"] == judge.files and len(judge.files) == 2
        never = TumorFilter.load(constant_segmentor(tmp_path / "b", -5.0), device="cpu")
        assert liver_tumors(phantom, never, count=1).records[0].filter_verdict["score"] == 0.0

    def test_a_missing_folder_is_named(self, tmp_path):
        with pytest.raises(InputError, match="nothing there"):
            TumorFilter.load(tmp_path / "nope")

    def test_a_checkpoint_of_another_kind_or_with_changed_weights_is_named(
        self, tmp_path, adversarial_checkpoint
    ):
        with pytest.raises(InputError, match="segmentor") as found:
            TumorFilter.load(adversarial_checkpoint)
        assert str(adversarial_checkpoint) in str(found.value)
        folder = constant_segmentor(tmp_path / "seg", 5.0)
        weights = folder / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        with pytest.raises(InputError, match="model.safetensors"):
            TumorFilter.load(folder)
