"""Scalar schedules of the pretraining loop: learning rate, teacher temperature (and the EMA momentum in ema.py).

All are plain functions of the step (any unit: steps or fractional epochs, used consistently), with exact endpoints.
"""

import math

# DINOv2 defaults (dinov2/configs/ssl_default_config.yaml: teacher.warmup_teacher_temp 0.04, teacher.teacher_temp
# 0.07, teacher.warmup_teacher_temp_epochs 30).
TEACHER_TEMP_START = 0.04
TEACHER_TEMP_END = 0.07


def cosine_ramp(start: float, end: float, progress: float) -> float:
    """Half-cosine from `start` (progress <= 0) to `end` (progress >= 1); both endpoints exact."""
    p = min(max(progress, 0.0), 1.0)
    weight = 0.5 * (1.0 - math.cos(math.pi * p))  # 0 -> 1
    return start * (1.0 - weight) + end * weight


def teacher_temperature(
    step: float, warmup_steps: float, start: float = TEACHER_TEMP_START, end: float = TEACHER_TEMP_END
) -> float:
    """Linear from `start` at step 0 to `end` at `warmup_steps`, then constant `end`."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    t = max(step, 0.0) / warmup_steps
    return start * (1.0 - t) + end * t


def lr_at(step: float, base_lr: float, warmup_steps: float, total_steps: float, min_lr: float = 0.0) -> float:
    """Linear warmup from 0 at step 0 to `base_lr` at `warmup_steps`, then half-cosine down to `min_lr` at
    `total_steps`; `min_lr` after that."""
    if not 0 <= warmup_steps <= total_steps or total_steps <= 0:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}"
        )
    if step < warmup_steps:
        return base_lr * max(step, 0.0) / warmup_steps
    if total_steps == warmup_steps:  # no decay phase: nothing left after the warmup
        return min_lr
    return cosine_ramp(base_lr, min_lr, (step - warmup_steps) / (total_steps - warmup_steps))
