import pytest

from pretrain.schedules import cosine_ramp, lr_at, teacher_temperature


def test_teacher_temperature_warms_up_linearly_then_stays():
    assert teacher_temperature(0, 30) == 0.04
    assert teacher_temperature(15, 30) == pytest.approx(0.055)
    assert teacher_temperature(30, 30) == 0.07
    assert teacher_temperature(10_000, 30) == 0.07
    assert teacher_temperature(0, 0) == 0.07
    assert teacher_temperature(2.5, 10, start=0.1, end=0.2) == pytest.approx(0.125)


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
