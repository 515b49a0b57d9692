"""Pipelines: compose organ analysis, shapes, generators and outputs."""

from tumorsynth.pipelines.synthesize import (
    SynthesisOutput,
    TumorRequest,
    TumorSpec,
    render_specs,
    replay_case,
    synthesize_case,
)

__all__ = [
    "SynthesisOutput",
    "TumorRequest",
    "TumorSpec",
    "render_specs",
    "replay_case",
    "synthesize_case",
]
