"""What a stage asks of the cluster: CPUs and GPUs per worker, batch size, and a worker pool that may grow with the
cluster. pool_size() turns a pool into numbers from the cluster's resources alone, so layouts are testable without
GPUs; the Ray adapter (curation/score/stage_runner.py) calls it when the pipeline is built."""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from common.config import bounded

AUTO = "auto"
# A stage without GPUs whose pool is `auto` gets one worker per this many GPUs: the CPU heads on the CLIP embedding
# (MLPs, prompt dot products) score > 1,000 images/s per core (docs/SCALING.md §2), an A100 runs detection + pose +
# CLIP at ~220 images/s (docs/SCALING.md), so one worker keeps up with 4 GPUs with room to spare.
GPUS_PER_CPU_WORKER = 4


@dataclass
class StageResources:
    num_cpus: float = bounded(1.0, gt=0)
    # Per worker; a fraction shares a GPU between actors. Requested only when the cluster has GPUs: on a CPU-only
    # cluster the stage runs on CPU with the same settings.
    num_gpus: float = bounded(0.0, ge=0)
    batch_size: int = bounded(32, ge=1)
    min_workers: int = bounded(1, ge=1)  # model stages: actors started up front and always held
    # Model stages: the actor pool grows to this as the queue backs up; model-free stages: tasks at once.
    # "auto": as many as the GPUs allow, floor(cluster GPUs / num_gpus), at pipeline build; a model stage without GPUs
    # gets one actor per GPUS_PER_CPU_WORKER GPUs, and min_workers on a cluster without GPUs; model-free: Ray decides.
    max_workers: int | str = 1

    def __post_init__(self) -> None:
        if not valid_pool(self.min_workers, self.max_workers):
            raise ValueError(
                f"resources.max_workers={self.max_workers!r}: must be 'auto' or a whole number >= min_workers "
                f"({self.min_workers})"
            )


def valid_pool(min_workers: int, max_workers: int | str) -> bool:
    return max_workers == AUTO or (not isinstance(max_workers, str) and max_workers >= min_workers)


@dataclass(frozen=True)
class PoolSize:
    min_size: int
    max_size: int | None  # None: Ray Data decides (model-free stages with `auto`)


def head_resources() -> StageResources:
    """A head on the CLIP embedding (MLP, prompt dot products): CPU only, big batches, a pool growing with the GPUs."""
    return StageResources(num_cpus=0.5, num_gpus=0.0, batch_size=256, max_workers=AUTO)


def cluster_gpus(cluster: Mapping[str, float]) -> float:
    return float(cluster.get("GPU", 0.0))


def pool_size(resources: StageResources, cluster: Mapping[str, float], *, needs_model: bool) -> PoolSize:
    """The pool of a stage on a cluster with `cluster` resources (as ray.cluster_resources() gives them)."""
    low = resources.min_workers if needs_model else 1
    if resources.max_workers != AUTO:
        return PoolSize(low, int(resources.max_workers))
    if not needs_model:
        return PoolSize(low, None)  # tasks hold nothing between batches: Ray Data runs as many as CPUs are free
    gpus = cluster_gpus(cluster)
    if gpus <= 0:
        return PoolSize(low, low)
    if resources.num_gpus > 0:
        fit = math.floor(gpus / resources.num_gpus + 1e-9)  # 1e-9: 8 / (1/3) must give 24, not 23
    else:
        fit = math.ceil(gpus / GPUS_PER_CPU_WORKER)
    return PoolSize(low, max(low, fit))


def stage_device(device: str, resources: StageResources) -> str:
    """The device a model of a stage should load on: `auto` means CPU when the stage asks for no GPU, so an actor on a
    GPU node never takes GPU memory it was not given; anything else as configured."""
    return "cpu" if device == AUTO and resources.num_gpus == 0 else device
