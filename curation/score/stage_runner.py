"""The one adapter from a Stage to Ray Data: map_batches over pyarrow batches with the stage's resources, model stages
on an autoscaling actor pool, model-free stages as a task pool, both sized from the cluster at build time."""

from collections.abc import Mapping

import ray
import ray.data

from curation.stages.base import Stage
from curation.stages.resources import cluster_gpus, pool_size


class _StageActor:
    """Holds one stage per actor, so its model loads once and serves every batch the actor gets."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def __call__(self, batch):
        return self.stage(batch)


def compute_strategy(
    stage: Stage, cluster: Mapping[str, float]
) -> ray.data.ActorPoolStrategy | ray.data.TaskPoolStrategy:
    pool = pool_size(stage.resources, cluster, needs_model=stage.needs_model)
    if stage.needs_model:
        return ray.data.ActorPoolStrategy(min_size=pool.min_size, max_size=pool.max_size)
    return ray.data.TaskPoolStrategy(size=pool.max_size)


def apply_stage(
    ds: ray.data.Dataset,
    stage: Stage,
    *,
    gpu_available: bool | None = None,
    cluster: Mapping[str, float] | None = None,
) -> ray.data.Dataset:
    """`cluster`: resources to size pools by (default: the connected cluster's); `gpu_available`: whether GPUs are
    requested (default: the cluster has GPUs; the driver's own may differ, it often runs on a CPU head node)."""
    if cluster is None:
        cluster = ray.cluster_resources()
    if gpu_available is None:
        gpu_available = cluster_gpus(cluster) > 0
    r = stage.resources
    num_gpus = r.num_gpus if gpu_available else 0  # a CPU-only cluster runs the same stage on CPU
    common = {"batch_format": "pyarrow", "batch_size": r.batch_size, "num_cpus": r.num_cpus, "num_gpus": num_gpus}
    compute = compute_strategy(stage, cluster if gpu_available else {**cluster, "GPU": 0.0})
    if stage.needs_model:
        return ds.map_batches(_StageActor, fn_constructor_kwargs={"stage": stage}, compute=compute, **common)
    return ds.map_batches(stage, compute=compute, **common)
