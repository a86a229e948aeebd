"""The post-training loop: AdamW with layer-wise LR decay, warmup + linear decay, grad clip, NaN guard; checkpoints,
metrics and distributed launch shared with pretraining (common/training); evaluation every `eval_every` steps."""

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from common.training.checkpoint import resume_latest, save_checkpoint
from common.training.distributed import DistInfo, init_distributed, mean_across_ranks, pick_device
from common.training.guarded_step import NonFiniteStreak, guarded_step
from common.training.lr_schedules import linear_lr_at
from common.training.metrics_log import MetricsLog
from posttrain.build import build_training
from posttrain.config import PosttrainConfig
from posttrain.data.resumable_batches import ResumableBatches
from posttrain.evaluate import evaluate
from posttrain.tasks import build_task

log = logging.getLogger(__name__)


@dataclass
class PosttrainRun:
    step: int
    metrics: list[dict[str, Any]]
    skipped_nonfinite: int


def train(
    cfg: PosttrainConfig, *, resume: bool = False, stop_at: int | None = None, info: DistInfo | None = None
) -> PosttrainRun:
    out = Path(cfg.output)
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    info = info or init_distributed(cfg.distributed.backend)
    device = pick_device(cfg.device, info)
    task = build_task(cfg)
    torch.manual_seed(cfg.seed)  # the same head initialisation on every rank
    model, optimizer = build_training(cfg, task, device)
    loss_fn = task.build_loss().to(device)
    train_set = task.dataset(cfg.train_data, train=True)
    batches = ResumableBatches(
        train_set,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        info=info,
        collate=task.collate,
    )
    torch.manual_seed(cfg.seed + info.rank)
    start, skipped = resume_latest(out, model, optimizer, batches, info) if resume else (0, 0)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    metrics, streak = [], NonFiniteStreak(skipped)
    iterator = iter(batches)
    model.train()
    bar = tqdm(total=cfg.steps, initial=start, desc=f"posttrain {cfg.task}", disable=None if info.is_main else True)
    with MetricsLog(out, tensorboard=cfg.tensorboard, enabled=info.is_main) as metrics_log, bar:
        for step in range(start, end):
            t0 = time.perf_counter()
            lr = linear_lr_at(step, cfg.lr, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            batch = next(iterator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                losses = task.losses(model, loss_fn, batch, device)
            row: dict[str, Any] = {"step": step + 1, "lr": lr}
            row.update(mean_across_ranks({k: float(v.detach()) for k, v in losses.items()}, device))
            grad_norm = guarded_step(model, optimizer, losses["loss"], grad_clip=cfg.grad_clip, device=device)
            streak.record(grad_norm is not None, step)
            if grad_norm is None:
                row["loss"], row["skipped"] = float("nan"), True
            else:
                row["grad_norm"] = grad_norm
            row["seconds"] = round(time.perf_counter() - t0, 4)
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
                row.update({f"val_{k}": v for k, v in evaluate(cfg, task, model, device, info).items()})
                model.train()
            metrics.append(row)
            if (step + 1) % cfg.log_every == 0:
                metrics_log.write(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
                extra = {"skipped_nonfinite": streak.skipped, "task": cfg.task, "config": asdict(cfg)}
                save_checkpoint(out, step + 1, model, optimizer, extra, {"data": batches.state_dict()}, info)
    return PosttrainRun(end, metrics, streak.skipped)
