import pytest
import torch

from pretrain.losses.dino_loss import dino_loss
from pretrain.losses.sinkhorn import sinkhorn_knopp

B, K = 6, 10


def _logits(n_local: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(2 + n_local, B, K, generator=g)  # [V, B, K]
    teacher = torch.randn(2, B, K, generator=g)  # [2, B, K]
    return student, teacher


def _reference(student, teacher, teacher_temp, student_temp):
    targets = sinkhorn_knopp(torch.cat([teacher[0], teacher[1]]), teacher_temp).split(B)  # 2 x [B, K]
    losses = []
    for g in range(2):
        for v in range(student.shape[0]):
            if v == g:
                continue
            log_p = torch.log_softmax(student[v] / student_temp, dim=-1)  # [B, K]
            per_sample = [-(targets[g][b] * log_p[b]).sum() for b in range(B)]
            losses.append(sum(per_sample) / B)
    return sum(losses) / len(losses), len(losses)


@pytest.mark.parametrize("n_local", [0, 1, 8])
def test_loss_equals_explicit_loop_over_pairs(n_local):
    student, teacher = _logits(n_local)
    expected, n_pairs = _reference(student, teacher, teacher_temp=0.05, student_temp=0.1)
    assert n_pairs == 2 + 2 * n_local  # global<->other global, and each global<->each local
    loss = dino_loss(student, teacher, teacher_temp=0.05)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_same_view_pairs_are_excluded():
    # With no local views only (teacher 0, student 1) and (teacher 1, student 0) count: a student view that equals
    # its own teacher view's targets exactly gains nothing from that match.
    student, teacher = _logits(0)
    targets = sinkhorn_knopp(teacher.flatten(0, 1), 0.05).unflatten(0, (2, B))  # [2, B, K]
    cross = [-(targets[g] * torch.log_softmax(student[1 - g] / 0.1, dim=-1)).sum(-1).mean() for g in range(2)]
    torch.testing.assert_close(dino_loss(student, teacher, teacher_temp=0.05), sum(cross) / 2)


def test_gradient_flows_to_the_student_only():
    student, teacher = _logits(2)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    dino_loss(student, teacher, teacher_temp=0.05).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_mismatched_shapes_are_rejected():
    student, teacher = _logits(2)
    with pytest.raises(ValueError, match="must be"):
        dino_loss(student[:1], teacher, teacher_temp=0.05)
    with pytest.raises(ValueError, match="must be"):
        dino_loss(student[:, :, :5], teacher, teacher_temp=0.05)
