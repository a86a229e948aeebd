"""The pretraining loop: AdamW (0.9, 0.95), warmup + cosine LR, EMA teacher, grad clip, NaN guard, checkpoints
every N steps, metrics.jsonl, resume that continues bit for bit on CPU.

`batches` is any iterable of {"global": [G, B, 3, H, W], "local": [L, B, 3, h, w]} with `state_dict()` /
`load_state_dict()` for its position (pretrain/data's loader, or a fixed source in tests).
"""

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from pretrain.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from pretrain.ema import ema_update, momentum_schedule
from pretrain.masking import sample_masks
from pretrain.objective import ObjectiveConfig, Sapiens2Pretrainer
from pretrain.schedules import lr_at, teacher_temperature

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
MAX_NONFINITE_IN_A_ROW = 10


@dataclass
class OptimConfig:
    lr: float = 1.5e-4  # MAE's base LR (per 256 images); scale with the batch for real runs
    min_lr: float = 1e-6
    weight_decay: float = 0.05  # DESIGN.md
    betas: tuple[float, float] = (0.9, 0.95)  # DESIGN.md
    warmup_steps: int = 10
    grad_clip: float = 3.0  # DINOv2's clip_grad


@dataclass
class LoopConfig:
    steps: int = 100
    seed: int = 0
    mask_ratio: float = 0.75  # DESIGN.md
    block_fraction: float = 0.5  # share of samples with blockwise masks; the rest patchwise
    momentum_base: float = 0.992  # EMA teacher, cosine to 1 (DESIGN.md)
    teacher_temp_warmup_steps: int = 30
    checkpoint_every: int = 50
    log_every: int = 1
    tensorboard: bool = True  # scalars also to <output>/tensorboard
    device: str = "auto"  # auto: cuda when present, else cpu
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0 <= self.optim.warmup_steps <= self.steps:
            raise ValueError(f"optim.warmup_steps must be in [0, steps={self.steps}], got {self.optim.warmup_steps}")


class BatchSource(Protocol):
    def __iter__(self): ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainRun:
    step: int
    metrics: list[dict]
    skipped_nonfinite: int


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(model: Sapiens2Pretrainer, cfg: OptimConfig) -> torch.optim.AdamW:
    """No weight decay on norms, biases, tokens and the prototypes' 1-D parameters."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def step_masks(cfg: LoopConfig, step: int, views: int, batch: int, grid: tuple[int, int]) -> torch.Tensor:
    """Masks from a generator seeded by (seed, step): a resumed run draws the same masks without saving RNG."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    masks = sample_masks(views * batch, grid, ratio=cfg.mask_ratio, block_fraction=cfg.block_fraction, generator=gen)
    return masks.view(views, batch, -1)  # [G, B, N]


def train(
    cfg: LoopConfig, batches: BatchSource, out: Path, *, resume: bool = False, stop_at: int | None = None
) -> TrainRun:
    """Train to `cfg.steps`, or stop after step `stop_at` (a checkpoint is written there) to continue later with
    `resume=True`; the schedules always follow `cfg.steps`."""
    out = Path(out)
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Sapiens2Pretrainer(cfg.objective).to(device)
    optimizer = build_optimizer(model, cfg.optim)
    start, skipped = 0, 0
    checkpoint = latest_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer)
        start, skipped = state["step"], state.get("skipped_nonfinite", 0)
        batches.load_state_dict(state["loader"])
        log.info("resumed from %s at step %d", checkpoint, start)
    elif resume:
        log.info("no checkpoint in %s: starting from step 0", out)
    metrics, in_a_row = [], 0
    iterator = iter(batches)
    model.train()
    board = _tensorboard(out) if cfg.tensorboard else None
    with (out / METRICS).open("a") as sink, tqdm(total=cfg.steps, initial=start, desc="pretrain", disable=None) as bar:
        for step in range(start, end):
            t0 = time.perf_counter()
            batch = next(iterator)
            row = _train_step(cfg, model, optimizer, batch, step, device)
            if not math.isfinite(row["loss"]):
                skipped += 1
                in_a_row += 1
                if in_a_row >= MAX_NONFINITE_IN_A_ROW:
                    raise FloatingPointError(f"{in_a_row} steps in a row with a non-finite loss (last at {step})")
            else:
                in_a_row = 0
            row["seconds"] = round(time.perf_counter() - t0, 4)
            metrics.append(row)
            if (step + 1) % cfg.log_every == 0:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                if board is not None:
                    for name, value in row.items():
                        if isinstance(value, float):
                            board.add_scalar(f"train/{name}", value, row["step"])
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
                extra = {"loader": batches.state_dict(), "skipped_nonfinite": skipped, "config": asdict(cfg)}
                save_checkpoint(out, step + 1, model, optimizer, extra)
    if board is not None:
        board.close()
    return TrainRun(end, metrics, skipped)


def _tensorboard(out: Path):
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when asked for

    return SummaryWriter(str(out / "tensorboard"))


def _train_step(cfg: LoopConfig, model, optimizer, batch: dict, step: int, device: torch.device) -> dict[str, Any]:
    o = cfg.optim
    lr = lr_at(step, o.lr, o.warmup_steps, cfg.steps, o.min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr
    global_views = batch["global"].to(device)
    local_views = batch["local"].to(device) if batch.get("local") is not None else None
    g, b, _, h, w = global_views.shape
    patch = model.patch
    masks = step_masks(cfg, step, g, b, (h // patch, w // patch)).to(device)
    temp = teacher_temperature(step, cfg.teacher_temp_warmup_steps)
    # bf16 autocast on GPU only: CPU runs (tests, resume checks) stay in float32 and bit-reproducible.
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        losses = model(global_views, local_views, masks, temp)
    optimizer.zero_grad(set_to_none=True)
    row: dict[str, Any] = {"step": step + 1, "lr": lr, "teacher_temp": temp}
    row.update({k: float(v.detach()) for k, v in losses.items()})
    if not math.isfinite(row["loss"]):  # NaN guard: no update, no EMA; the step is counted and logged
        row["skipped"] = True
        return row
    losses["loss"].backward()
    row["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip))
    optimizer.step()
    momentum = momentum_schedule(step, cfg.steps, base=cfg.momentum_base)
    ema_update(model.teacher_modules(), model.student_modules(), momentum)
    row["momentum"] = momentum
    return row


class FixedBatches:
    """A deterministic in-memory batch source (tests, smoke runs): batch i is the same for a given seed."""

    def __init__(self, batches: Iterable[dict]) -> None:
        self.batches = list(batches)
        self.position = 0

    def __iter__(self):
        while True:
            batch = self.batches[self.position % len(self.batches)]
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]
