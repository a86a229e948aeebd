"""The EMA teacher: teacher = m * teacher + (1 - m) * student after every optimiser step."""

import torch
from torch import nn

from common.training.lr_schedules import cosine_ramp


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place, for every parameter: teacher = momentum * teacher + (1 - momentum) * student; buffers are copied.

    Both modules must have the same parameter and buffer names (the teacher is a copy of the student's
    architecture); the first mismatch is reported.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    t_params, s_params = dict(teacher.named_parameters()), dict(student.named_parameters())
    t_buffers, s_buffers = dict(teacher.named_buffers()), dict(student.named_buffers())
    for kind, t_names, s_names in (("parameter", t_params, s_params), ("buffer", t_buffers, s_buffers)):
        if t_names.keys() != s_names.keys():
            diff = sorted(t_names.keys() ^ s_names.keys())
            raise ValueError(f"teacher and student differ in {kind} names, first: {diff[0]!r}")
    names = list(s_params)
    t_list, s_list = [t_params[n] for n in names], [s_params[n] for n in names]
    # One fused kernel per op over all tensors instead of a Python loop over hundreds of parameters.
    torch._foreach_mul_(t_list, momentum)
    torch._foreach_add_(t_list, s_list, alpha=1.0 - momentum)
    for name, buffer in s_buffers.items():
        t_buffers[name].copy_(buffer)


def momentum_schedule(step: float, total_steps: float, base: float = 0.992, final: float = 1.0) -> float:
    """Half-cosine from `base` at step 0 to `final` at `total_steps` (DINOv2: momentum_teacher 0.992 -> 1)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    return cosine_ramp(base, final, step / total_steps)
