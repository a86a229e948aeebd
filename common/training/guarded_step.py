"""One optimiser update behind a NaN guard, the same for every training loop and every launcher.

A non-finite loss on any rank skips the update on all ranks together (DDP would hang if one rank skipped the
backward the others run); the loop counts skipped steps and gives up after too many in a row.
"""

import math

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from common.training.distributed import any_across_ranks

MAX_NONFINITE_IN_A_ROW = 10


def guarded_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, *, grad_clip: float, device: torch.device
) -> float | None:
    """zero_grad → backward → clip → step; returns the gradient norm before clipping, or None when the loss is not
    finite on some rank (nothing is updated then)."""
    optimizer.zero_grad(set_to_none=True)
    if any_across_ranks(not math.isfinite(float(loss.detach())), device):
        return None
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)


class NonFiniteStreak:
    """Counts skipped steps; raises when `limit` come in a row (the run diverged: lower the LR, check the data)."""

    def __init__(self, skipped: int = 0, limit: int = MAX_NONFINITE_IN_A_ROW) -> None:
        self.skipped, self.in_a_row, self.limit = skipped, 0, limit

    def record(self, finite: bool, step: int) -> None:
        if finite:
            self.in_a_row = 0
            return
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise FloatingPointError(f"{self.in_a_row} steps in a row with a non-finite loss (last at {step})")
