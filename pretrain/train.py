"""The pretraining loop: AdamW (0.9, 0.95), warmup + cosine LR, EMA teacher, grad clip, NaN guard, checkpoints
every N steps, metrics.jsonl, resume that continues bit for bit on CPU.

`batches` is any iterable of {"global": [G, B, 3, H, W], "local": [L, B, 3, h, w]} with `state_dict()` /
`load_state_dict()` for its position (pretrain/data's loader, or a fixed source in tests).

Distributed (torchrun or Ray Train, see common/training/distributed.py): each rank takes its own batches (B per
rank, equal across ranks); masks are drawn for the global batch of world_size·B and each rank takes its slice, and
Sinkhorn centring runs over the global batch, so N ranks with B samples each make the same update as one process
with N·B samples (up to float summation order; KoLeo, a within-batch term, is the exception).
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from common.config import bounded, check_ranges
from common.training.checkpoint import resume_latest
from common.training.distributed import DistInfo, DistributedConfig, init_distributed, pick_device, wrap_model
from common.training.loop import optimiser_step, run_steps
from common.training.lr_schedules import lr_at
from pretrain.ema import ema_update, momentum_schedule
from pretrain.masking import sample_masks
from pretrain.objective import ObjectiveConfig, Sapiens2Pretrainer
from pretrain.probe import ProbeConfig, knn_probe
from pretrain.schedules import teacher_temperature


@dataclass
class OptimConfig:
    lr: float = bounded(1.5e-4, gt=0)  # MAE's base LR (per 256 images); scale with the batch for real runs
    min_lr: float = bounded(1e-6, ge=0)
    weight_decay: float = bounded(0.05, ge=0)  # DESIGN.md
    betas: tuple[float, float] = bounded((0.9, 0.95), ge=0, lt=1)  # DESIGN.md
    warmup_steps: int = bounded(10, ge=0)
    grad_clip: float = bounded(3.0, gt=0)  # DINOv2's clip_grad


@dataclass
class LoopConfig:
    steps: int = bounded(100, ge=1)
    seed: int = bounded(0, ge=0)
    mask_ratio: float = bounded(0.75, gt=0, lt=1)  # DESIGN.md; the encoder needs a visible patch, MAE a masked one
    block_fraction: float = bounded(0.5, ge=0, le=1)  # share of samples with blockwise masks; the rest patchwise
    momentum_base: float = bounded(0.992, ge=0, le=1)  # EMA teacher, cosine to 1 (DESIGN.md)
    teacher_temp_warmup_steps: int = bounded(30, ge=0)
    checkpoint_every: int = bounded(50, ge=1)
    log_every: int = bounded(1, ge=1)
    tensorboard: bool = True  # scalars also to <output>/tensorboard
    device: str = "auto"  # auto: cuda when present, else cpu
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # k-NN on the teacher's [CLS] every probe.every steps

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.optim.warmup_steps > self.steps:
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


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """No weight decay on norms, biases, tokens and the prototypes' 1-D parameters."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def step_masks(
    cfg: LoopConfig, step: int, views: int, batch: int, grid: tuple[int, int], info: DistInfo | None = None
) -> torch.Tensor:
    """This rank's masks [G, B, N]: the slice of the global batch's masks, drawn from a generator seeded by (seed,
    step), so a resumed run draws the same masks without saving RNG and ranks never share a mask."""
    info = info or DistInfo()
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    total = views * batch * info.world_size
    masks = sample_masks(total, grid, ratio=cfg.mask_ratio, block_fraction=cfg.block_fraction, generator=gen)
    masks = masks.view(views, batch * info.world_size, -1)  # [G, world·B, N]
    return masks[:, info.rank * batch : (info.rank + 1) * batch]


def train(
    cfg: LoopConfig,
    batches: BatchSource,
    out: Path,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    info: DistInfo | None = None,
) -> TrainRun:
    """Train to `cfg.steps`, or stop after step `stop_at` (a checkpoint is written there) to continue later with
    `resume=True`; the schedules always follow `cfg.steps`. Every rank calls this with its own `batches`; only rank 0
    writes metrics and checkpoints into `out` (shared by all ranks)."""
    out = Path(out)
    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    info = info or init_distributed(cfg.distributed.backend)
    device = pick_device(cfg.device, info)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    core = Sapiens2Pretrainer(cfg.objective).to(device)
    model = wrap_model(core, cfg.distributed.strategy, core.shard_units(), device)
    optimizer = build_optimizer(model, cfg.optim)
    torch.manual_seed(cfg.seed + info.rank)  # then a stream per rank (drop path)
    start, skipped = resume_latest(out, model, optimizer, batches, info) if resume else (0, 0)

    def probe(step: int) -> dict[str, float]:
        if cfg.probe.folder and cfg.probe.every and (step + 1) % cfg.probe.every == 0:
            # Every rank runs it: under FSDP the teacher's forward is a collective.
            return knn_probe(core.teacher, cfg.probe, device).as_metrics()
        return {}

    metrics, skipped = run_steps(
        lambda step, batch: _train_step(cfg, model, core, optimizer, batch, step, device, info),
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
        extra_state={"config": asdict(cfg)},
        desc="pretrain",
        after_step=probe,
    )
    return TrainRun(end, metrics, skipped)


def _train_step(
    cfg: LoopConfig, model, core: Sapiens2Pretrainer, optimizer, batch: dict, step: int, device, info: DistInfo
) -> dict[str, Any]:
    o = cfg.optim
    lr = lr_at(step, o.lr, o.warmup_steps, cfg.steps, o.min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr
    global_views = batch["global"].to(device)
    local_views = batch["local"].to(device) if batch.get("local") is not None else None
    g, b, _, h, w = global_views.shape
    masks = step_masks(cfg, step, g, b, (h // core.patch, w // core.patch), info).to(device)
    temp = teacher_temperature(step, cfg.teacher_temp_warmup_steps)
    # bf16 autocast on GPU only: CPU runs (tests, resume checks) stay in float32 and bit-reproducible.
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        losses = model(global_views, local_views, masks, temp)
    row: dict[str, Any] = {"step": step + 1, "lr": lr, "teacher_temp": temp}
    if not optimiser_step(row, losses, model, optimizer, grad_clip=o.grad_clip, device=device):
        return row  # NaN guard: no update, no EMA; the step is counted and logged
    momentum = momentum_schedule(step, cfg.steps, base=cfg.momentum_base)
    ema_update(core.teacher_modules(), core.student_modules(), momentum)
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
