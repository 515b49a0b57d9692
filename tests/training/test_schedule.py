"""The learning-rate schedule shared by the training loops: MONAI's warm-up + cosine, resumable
with a longer run."""

import math

import pytest
import torch

from tumorsynth.training.common import load_schedule_state, warmup_cosine


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _rates(scheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def test_warm_up_from_lr_over_warmup_steps_then_cosine_to_zero():
    rates = _rates(warmup_cosine(_optimizer(2.0), 4, 12), 13)
    assert rates[0] == pytest.approx(2.0 / 4)  # no step at a zero rate
    assert all(a < b for a, b in zip(rates[:4], rates[1:5], strict=True))  # warming up
    assert rates[4] == pytest.approx(2.0)
    for step in range(4, 13):  # cosine from the full rate at the end of warm-up to 0
        assert rates[step] == pytest.approx(1.0 * (1 + math.cos(math.pi * (step - 4) / 8)))
    assert rates[12] == pytest.approx(0.0, abs=1e-12)


def test_no_warm_up_starts_at_the_full_rate():
    assert _rates(warmup_cosine(_optimizer(), 0, 10), 1) == [pytest.approx(1.0)]


def test_a_resumed_schedule_continues_at_its_step_with_the_new_length():
    first = warmup_cosine(_optimizer(), 2, 8)
    _rates(first, 5)
    resumed = warmup_cosine(_optimizer(), 2, 12)  # the resumed run trains longer
    load_schedule_state(resumed, first.state_dict())
    fresh = warmup_cosine(_optimizer(), 2, 12)
    assert resumed.last_epoch == 5
    # the first resumed step runs at the rate the optimizer's saved state holds; from then on
    # the rates are those of the longer run
    assert _rates(resumed, 7)[1:] == pytest.approx(_rates(fresh, 12)[6:])
