"""Every registered generator is checked against the protocol (STYLE rule 14)."""

import json

import numpy as np
import pytest

from tumorsynth.generators import (
    RenderInput,
    TumorGenerator,
    TumorSite,
    get_generator,
    registered_generators,
)
from tumorsynth.organs import get_profile
from tumorsynth.organs.context import OrganContext
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
