import pytest

from pretrain.schedules import teacher_temperature


def test_teacher_temperature_warms_up_linearly_then_stays():
    assert teacher_temperature(0, 30) == 0.04
    assert teacher_temperature(15, 30) == pytest.approx(0.055)
    assert teacher_temperature(30, 30) == 0.07
    assert teacher_temperature(10_000, 30) == 0.07
    assert teacher_temperature(0, 0) == 0.07
    assert teacher_temperature(2.5, 10, start=0.1, end=0.2) == pytest.approx(0.125)
