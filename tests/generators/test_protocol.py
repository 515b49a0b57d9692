"""Every registered generator is checked against the protocol (STYLE rule 14), the test-only
``constant`` generator (``constant_generator.py``, registered by this folder's conftest) too."""

import json
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from batch_helpers import batch_settings
from tiny import synthesize_phantom

from tumorsynth.generators import (
    RenderInput,
    TumorGenerator,
    TumorSite,
    generator_takes,
    get_generator,
    registered_generators,
)
from tumorsynth.io.datasets import CaseRef
from tumorsynth.io.nifti import save_volume
from tumorsynth.io.records import MANIFEST_NAME, read_manifest
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OrganContext
from tumorsynth.pipelines.batch import run_batch
from tumorsynth.pipelines.replay import replay_manifest
from tumorsynth.pipelines.synthesize import TumorRequest, replay_case
from tumorsynth.shapes import RandomTumorShape, render_shape, shape_box

SPACING = (1.0, 1.0, 1.5)


def organ_scan(seed=0):
    rng = np.random.default_rng(seed)
    shape = (100, 100, 60)
    g = np.indices(shape).astype(np.float32)
    r = np.sqrt(((g[0] - 50) / 40) ** 2 + ((g[1] - 50) / 40) ** 2 + ((g[2] - 30) / 25) ** 2)
    organ = r < 1
    image = np.where(organ, 110.0, -90.0) + rng.normal(0, 12, shape)
    return image.astype(np.float32), organ


def render_input(generator: TumorGenerator, size="medium", seed=1, organ="liver"):
    image, mask = organ_scan()
    profile = get_profile(organ)
    ctx = OrganContext.build(image, mask, SPACING, profile)
    rng = np.random.default_rng(seed)
    shape = RandomTumorShape(profile).draw(ctx, size, rng)
    site = TumorSite(organ, size, profile, ctx.parenchyma, shape, SPACING)
    spec = generator.draw(site, rng)
    box = shape_box(shape, SPACING, image.shape, generator.margin_mm(spec))
    crop = image[box.slices]
    inputs = RenderInput(
        crop.copy(),
        crop.copy(),
        render_shape(shape, SPACING, box),
        mask[box.slices],
        SPACING,
        crop.copy(),
    )
    return spec, inputs, site


@pytest.fixture(params=registered_generators())
def generator(request, generator_options):
    return get_generator(request.param, **generator_options.get(request.param, {}))


def on_cpu(name: str) -> dict[str, Any]:
    """The device override for a generator that takes one (replay chooses the device)."""
    return {"device": "cpu"} if generator_takes(name, "device") else {}


def without_attempts(records) -> list[dict]:
    """Records as dicts; replay renders each kept tumor once (its batch copies ``attempts``)."""
    return [{k: v for k, v in r.to_dict().items() if k != "attempts"} for r in records]


class TestGeneratorProtocol:
    def test_implements_protocol(self, generator):
        assert isinstance(generator, TumorGenerator)
        assert generator.name in registered_generators()
        assert isinstance(generator.version, str) and generator.version

    def test_spec_is_json_serializable_and_drawn_from_rng(self, generator):
        spec_a, _, _ = render_input(generator, seed=3)
        spec_b, _, _ = render_input(generator, seed=3)
        spec_c, _, _ = render_input(generator, seed=4)
        assert json.loads(json.dumps(spec_a)) == spec_a
        assert spec_a == spec_b
        assert spec_a != spec_c

    def test_render_is_deterministic_for_a_spec(self, generator):
        spec, inputs, _ = render_input(generator)
        first = generator.render(spec, inputs)
        again = generator.render(json.loads(json.dumps(spec)), inputs)
        assert first.dtype == np.float32 and first.shape == inputs.image.shape
        assert np.array_equal(first, again)

    def test_render_changes_the_tumor_and_nothing_far_from_it(self, generator):
        spec, inputs, _ = render_input(generator)
        out = generator.render(spec, inputs)
        tumor = inputs.tumor_mask
        assert np.abs(out[tumor] - inputs.image[tumor]).mean() > 3.0
        far = inputs.shape.distance_mm > generator.margin_mm(spec)
        assert np.array_equal(out[far], inputs.image[far])

    def test_render_does_not_modify_its_inputs(self, generator):
        spec, inputs, _ = render_input(generator)
        before = inputs.image.copy(), inputs.original.copy()
        generator.render(spec, inputs)
        assert np.array_equal(inputs.image, before[0]) and np.array_equal(
            inputs.original, before[1]
        )

    def test_it_reads_at_least_nothing_and_a_batch_renders_as_render_does(self, generator):
        spec, inputs, _ = render_input(generator)
        other, other_inputs, _ = render_input(generator, seed=5, size="small")
        assert generator.context_mm(spec) >= 0.0
        alone = generator.render(spec, inputs)
        (single,) = generator.render_batch([spec], [inputs])
        assert np.array_equal(single, alone)
        both = generator.render_batch([spec, other], [inputs, other_inputs])
        assert [b.shape for b in both] == [alone.shape, other_inputs.image.shape]
        # Batched network calls may differ from single ones in the last bits only.
        assert np.abs(both[0] - alone).max() <= 1.0

    def test_its_options_rebuild_it_and_replay_is_byte_identical(self, generator, phantom):
        ct, seg = phantom
        out = synthesize_phantom(phantom, generator, count=2, rng=3)
        assert out.records and all(r.generator == generator.name for r in out.records)
        options = json.loads(json.dumps(out.records[0].generator_options))
        assert options == json.loads(json.dumps(generator.options))
        rebuilt = get_generator(generator.name, **options, **on_cpu(generator.name))
        assert rebuilt.version == generator.version
        again = replay_case(
            ct.array,
            seg.array,
            out.records,
            spacing_mm=ct.spacing_mm,
            label_map="phantom",
            affine=ct.affine,
            generators={generator.name: rebuilt},
        )
        assert again.image.tobytes() == out.image.tobytes()
        assert again.label.tobytes() == out.label.tobytes()
        assert without_attempts(again.records) == without_attempts(out.records)


def test_a_generator_defined_elsewhere_runs_through_batch_and_replay_unchanged(tmp_path, phantom):
    """Nothing in the pipelines knows ``constant``: its records rebuild it (offset_hu -60)."""
    ct, seg = phantom
    case = CaseRef("ph", save_volume(ct, tmp_path / "ph_0000.nii.gz"), tmp_path / "ph.nii.gz")
    save_volume(seg, case.label)
    settings = batch_settings(
        requests=(TumorRequest("liver", 2, "small"),),
        generator="constant",
        generator_options={"offset_hu": -60.0},
    )
    made = run_batch([case], tmp_path / "made", settings, progress=False).out_dir
    records = read_manifest(made / MANIFEST_NAME)
    assert {r.generator for r in records} == {"constant"}
    assert all(r.generator_options == {"offset_hu": -60.0} for r in records)
    assert all(-72.0 <= r.appearance["delta_hu"] <= -48.0 for r in records)
    replayed = replay_manifest(made / MANIFEST_NAME, tmp_path / "replayed", progress=False)
    assert len(replayed.records) == len(records)
    for folder in ("imagesTr", "labelsTr"):
        for path in sorted((made / folder).iterdir()):
            again = tmp_path / "replayed" / folder / path.name
            assert np.asarray(nib.load(again).dataobj).tobytes() == (
                np.asarray(nib.load(path).dataobj).tobytes()
            )
