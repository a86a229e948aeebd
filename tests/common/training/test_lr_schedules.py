import itertools

import pytest

from common.training.lr_schedules import cosine_ramp, linear_lr_at, lr_at


def test_lr_warmup_then_cosine_endpoints_are_exact():
    kwargs = {"base_lr": 4e-3, "warmup_steps": 100, "total_steps": 1100, "min_lr": 1e-6}
    assert lr_at(0, **kwargs) == 0.0
    assert lr_at(50, **kwargs) == pytest.approx(2e-3)
    assert lr_at(100, **kwargs) == 4e-3
    assert lr_at(600, **kwargs) == pytest.approx((4e-3 + 1e-6) / 2)
    assert lr_at(1100, **kwargs) == 1e-6
    assert lr_at(5000, **kwargs) == 1e-6
    decay = [lr_at(s, **kwargs) for s in range(100, 1101)]
    assert decay == sorted(decay, reverse=True)


def test_lr_without_warmup_starts_at_base():
    assert lr_at(0, 1.0, 0, 10) == 1.0
    assert lr_at(10, 1.0, 0, 10) == 0.0


def test_lr_rejects_bad_step_counts():
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_at(0, 1.0, 20, 10)


def test_cosine_ramp_clamps_and_hits_endpoints():
    assert cosine_ramp(0.3, 0.9, -1.0) == 0.3
    assert cosine_ramp(0.3, 0.9, 0.0) == 0.3
    assert cosine_ramp(0.3, 0.9, 1.0) == 0.9
    assert cosine_ramp(0.3, 0.9, 2.0) == 0.9
    assert cosine_ramp(0.0, 1.0, 0.5) == pytest.approx(0.5)


def test_linear_schedule_warms_up_then_decays_linearly_to_min():
    kwargs = {"base_lr": 1e-3, "warmup_steps": 10, "total_steps": 110, "min_lr": 0.0}
    assert linear_lr_at(0, **kwargs) == 0.0
    assert linear_lr_at(5, **kwargs) == pytest.approx(5e-4)
    assert linear_lr_at(10, **kwargs) == 1e-3
    assert linear_lr_at(60, **kwargs) == pytest.approx(5e-4)
    assert linear_lr_at(110, **kwargs) == 0.0
    assert linear_lr_at(500, **kwargs) == 0.0
    steps = [linear_lr_at(s, **kwargs) for s in range(10, 111)]
    assert all(b - a == pytest.approx(-1e-5) for a, b in itertools.pairwise(steps))
