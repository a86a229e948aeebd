"""One process per device: process group set-up, model wrapping (DDP or FSDP2) and the few collectives a training
loop needs. Shared by pretraining and post-training.

Three ways in, one code path: a single process (no process group), `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the
environment, `env://` rendezvous) and Ray Train's `TorchTrainer` (the group is already initialised when the loop
starts). Everything here is a no-op or an identity on a single process.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

STRATEGIES = ("ddp", "fsdp")


@dataclass
class DistributedConfig:
    strategy: str = "ddp"  # ddp | fsdp (FSDP2 fully_shard per transformer block); used when world size > 1
    backend: str = "auto"  # auto: nccl with CUDA, else gloo

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"distributed.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(backend: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Join the process group described by the environment (torchrun), or describe the one already joined (Ray
    Train). `backend` auto: NCCL when CUDA is present, else gloo."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return DistInfo()
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def pick_device(name: str, info: DistInfo) -> torch.device:
    """auto: this process's GPU when CUDA is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda", info.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def wrap_model(model: nn.Module, strategy: str, shard_units: Iterable[nn.Module], device: torch.device) -> nn.Module:
    """DDP: replicate and average gradients. FSDP2 (`fully_shard`): shard parameters, gradients and optimizer state
    across ranks; each of `shard_units` (transformer blocks, typically) is gathered on its own, then the root holds
    what is left. Call before building the optimizer. A single process gets the model back unchanged."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown distributed strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if not is_initialized() or dist.get_world_size() == 1:
        return model
    if strategy == "ddp":
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard  # torch >= 2.6

    for unit in shard_units:
        fully_shard(unit)
    fully_shard(model)
    return model


def mean_across_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Means over ranks of scalar metrics (same keys on every rank), for logging by rank 0. `device`: where the
    backend takes tensors (the GPU for NCCL)."""
    if not is_initialized() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / dist.get_world_size() for k, v in zip(keys, t.tolist(), strict=True)}


def any_across_ranks(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any: decisions that change the collective sequence (skipping a
    step) must be taken by all ranks together, or DDP hangs."""
    if not is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """`obj` from every rank, in rank order, on every rank (small picklable state: loader positions, RNG)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group this module joined (Ray Train tears its own group down)."""
    if is_initialized() and "TORCHELASTIC_RUN_ID" in os.environ:
        dist.destroy_process_group()
