"""The step loop every training run shares: progress bar, NaN-guard streak, metrics.jsonl / TensorBoard on rank 0,
checkpoints every N steps and at the last step. What a step does is the caller's `step_fn`."""

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from common.training.checkpoint import save_checkpoint
from common.training.distributed import DistInfo, mean_across_ranks
from common.training.guarded_step import NonFiniteStreak, guarded_step
from common.training.metrics_log import MetricsLog


def optimiser_step(
    row: dict[str, Any],
    losses: dict[str, torch.Tensor],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float,
    device: torch.device,
) -> bool:
    """Log the losses (means over ranks) into `row`, then update behind the NaN guard; False when skipped (the row
    then says so, with a NaN loss)."""
    row.update(mean_across_ranks({k: float(v.detach()) for k, v in losses.items()}, device))
    grad_norm = guarded_step(model, optimizer, losses["loss"], grad_clip=grad_clip, device=device)
    if grad_norm is None:
        row["loss"], row["skipped"] = math.nan, True
        return False
    row["grad_norm"] = grad_norm
    return True


def run_steps(
    step_fn: Callable[[int, Any], dict[str, Any]],
    batches: Any,
    *,
    start: int,
    end: int,
    total: int,
    skipped: int,
    out: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: DistInfo,
    log_every: int,
    checkpoint_every: int,
    tensorboard: bool,
    extra_state: dict[str, Any],
    desc: str,
    after_step: Callable[[int], dict[str, float]] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Steps start..end-1 of a `total`-step run: `step_fn(step, batch)` → its metrics row ("skipped": True when the
    NaN guard skipped it); `after_step(step)` → more metrics (evaluations, probes). Returns (rows, skipped steps)."""
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    rows, streak = [], NonFiniteStreak(skipped)
    iterator: Iterator = iter(batches)
    model.train()
    bar = tqdm(total=total, initial=start, desc=desc, disable=None if info.is_main else True)
    with MetricsLog(out, tensorboard=tensorboard, enabled=info.is_main) as metrics_log, bar:
        for step in range(start, end):
            t0 = time.perf_counter()
            row = step_fn(step, next(iterator))
            streak.record(not row.get("skipped", False), step)
            row["seconds"] = round(time.perf_counter() - t0, 4)
            if after_step is not None:
                row.update(after_step(step))
            rows.append(row)
            if (step + 1) % log_every == 0:
                metrics_log.write(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if (step + 1) % checkpoint_every == 0 or step + 1 == end:
                extra = {"skipped_nonfinite": streak.skipped, **extra_state}
                save_checkpoint(out, step + 1, model, optimizer, extra, {"data": batches.state_dict()}, info)
    return rows, streak.skipped
