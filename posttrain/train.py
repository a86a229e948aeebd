"""The post-training loop: AdamW with layer-wise LR decay, warmup + linear decay, grad clip, NaN guard; checkpoints,
metrics and distributed launch shared with pretraining (common/training); evaluation every `eval_every` steps."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from common.training.checkpoint import resume_latest
from common.training.distributed import DistInfo, init_distributed, pick_device
from common.training.loop import optimiser_step, run_steps
from common.training.lr_schedules import linear_lr_at
from posttrain.build import build_training
from posttrain.config import PosttrainConfig
from posttrain.data.resumable_batches import ResumableBatches
from posttrain.evaluate import evaluate
from posttrain.tasks import build_task


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

    def step_fn(step: int, batch: dict[str, Any]) -> dict[str, Any]:
        lr = linear_lr_at(step, cfg.lr, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses = task.losses(model, loss_fn, batch, device)
        row: dict[str, Any] = {"step": step + 1, "lr": lr}
        optimiser_step(row, losses, model, optimizer, grad_clip=cfg.grad_clip, device=device)
        return row

    def validate(step: int) -> dict[str, float]:
        if not (cfg.eval_every and (step + 1) % cfg.eval_every == 0):
            return {}
        results = evaluate(cfg, task, model, device, info)
        model.train()
        return {f"val_{k}": v for k, v in results.items()}

    metrics, skipped = run_steps(
        step_fn,
        batches,
        start=start,
        end=end,
        total=cfg.steps,
        skipped=skipped,
        out=out,
        model=model,
        optimizer=optimizer,
        info=info,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        tensorboard=cfg.tensorboard,
        extra_state={"task": cfg.task, "config": asdict(cfg)},
        desc=f"posttrain {cfg.task}",
        after_step=validate,
    )
    return PosttrainRun(end, metrics, skipped)
