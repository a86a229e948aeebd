"""Learning-rate schedules as plain functions of the step, with exact endpoints."""

import math


def cosine_ramp(start: float, end: float, progress: float) -> float:
    """Half-cosine from `start` (progress <= 0) to `end` (progress >= 1); both endpoints exact."""
    p = min(max(progress, 0.0), 1.0)
    weight = 0.5 * (1.0 - math.cos(math.pi * p))  # 0 -> 1
    return start * (1.0 - weight) + end * weight


def _check(warmup_steps: float, total_steps: float) -> None:
    if not 0 <= warmup_steps <= total_steps or total_steps <= 0:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}"
        )


def lr_at(step: float, base_lr: float, warmup_steps: float, total_steps: float, min_lr: float = 0.0) -> float:
    """Linear warmup from 0 at step 0 to `base_lr` at `warmup_steps`, then half-cosine down to `min_lr` at
    `total_steps`; `min_lr` after that."""
    _check(warmup_steps, total_steps)
    if step < warmup_steps:
        return base_lr * max(step, 0.0) / warmup_steps
    if total_steps == warmup_steps:  # no decay phase: nothing left after the warmup
        return min_lr
    return cosine_ramp(base_lr, min_lr, (step - warmup_steps) / (total_steps - warmup_steps))


def linear_lr_at(step: float, base_lr: float, warmup_steps: float, total_steps: float, min_lr: float = 0.0) -> float:
    """Linear warmup from 0 to `base_lr` at `warmup_steps`, then linear decay to `min_lr` at `total_steps`
    (the post-training schedule of ViTPose / Sapiens); `min_lr` after that."""
    _check(warmup_steps, total_steps)
    if step < warmup_steps:
        return base_lr * max(step, 0.0) / warmup_steps
    if total_steps == warmup_steps:
        return min_lr
    p = min((step - warmup_steps) / (total_steps - warmup_steps), 1.0)
    return base_lr + (min_lr - base_lr) * p
