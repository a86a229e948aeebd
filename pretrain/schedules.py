"""Scalar schedules of the pretraining loop: teacher temperature (the EMA momentum is in ema.py, the learning rate
in common/training/lr_schedules.py).

All are plain functions of the step (any unit: steps or fractional epochs, used consistently), with exact endpoints.
"""

# DINOv2 defaults (dinov2/configs/ssl_default_config.yaml: teacher.warmup_teacher_temp 0.04, teacher.teacher_temp
# 0.07, teacher.warmup_teacher_temp_epochs 30).
TEACHER_TEMP_START = 0.04
TEACHER_TEMP_END = 0.07


def teacher_temperature(
    step: float, warmup_steps: float, start: float = TEACHER_TEMP_START, end: float = TEACHER_TEMP_END
) -> float:
    """Linear from `start` at step 0 to `end` at `warmup_steps`, then constant `end`."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    t = max(step, 0.0) / warmup_steps
    return start * (1.0 - t) + end * t
