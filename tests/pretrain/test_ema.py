import copy

import pytest
import torch
from torch import nn

from pretrain.ema import ema_update, momentum_schedule


def _pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(33, 70), nn.BatchNorm1d(70), nn.Linear(70, 5))
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    student.train()(torch.randn(4, 33))  # moves the BatchNorm running statistics
    return teacher, student


def test_update_is_the_exact_convex_combination():
    teacher, student = _pair()
    m = 0.992
    before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    ema_update(teacher, student, m)
    updated = dict(teacher.named_parameters())
    for name, s in student.named_parameters():
        t_part, s_part = before[name].double() * m, s.detach().double() * (1.0 - m)
        exact = t_part + s_part  # float64 reference
        # float32 arithmetic: m and 1 - m rounded to float32, each product and the sum rounded once (the kernel may
        # fuse the multiply-add, so the float32 result need not match a step-by-step float32 computation bitwise).
        bound = 2.0**-23 * (t_part.abs() + s_part.abs()) + 2.0**-24 * exact.abs()
        assert ((updated[name].double() - exact).abs() <= bound).all(), name


def test_buffers_are_copied():
    teacher, student = _pair()
    ema_update(teacher, student, 0.9)
    for (_, t), (_, s) in zip(teacher.named_buffers(), student.named_buffers(), strict=True):
        assert torch.equal(t, s)


def test_momentum_one_keeps_the_teacher_and_zero_copies_the_student():
    teacher, student = _pair()
    before = copy.deepcopy(teacher)
    ema_update(teacher, student, 1.0)
    for t, b in zip(teacher.parameters(), before.parameters(), strict=True):
        assert torch.equal(t, b)
    ema_update(teacher, student, 0.0)
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        assert torch.equal(t, s)


def test_no_autograd_history_is_recorded():
    teacher, student = _pair()
    ema_update(teacher, student, 0.5)
    assert all(p.grad is None and p.grad_fn is None for p in teacher.parameters())


def test_mismatched_modules_are_rejected():
    teacher, _ = _pair()
    with pytest.raises(ValueError, match="parameter names"):
        ema_update(teacher, nn.Sequential(nn.Linear(33, 70)), 0.99)


def test_momentum_schedule_endpoints_are_exact():
    assert momentum_schedule(0, 1000) == 0.992
    assert momentum_schedule(1000, 1000) == 1.0
    assert momentum_schedule(5000, 1000) == 1.0
    assert momentum_schedule(500, 1000) == pytest.approx(0.996)
    assert momentum_schedule(0, 10, base=0.9, final=0.99) == 0.9
    values = [momentum_schedule(s, 100) for s in range(101)]
    assert values == sorted(values)
