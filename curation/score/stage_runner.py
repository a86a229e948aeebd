"""The one adapter from a Stage to Ray Data: map_batches over pyarrow batches with the stage's resources."""

import ray.data
import torch

from curation.stages.base import Stage


class _StageActor:
    """Holds one stage per actor, so its model loads once and serves every batch the actor gets."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def __call__(self, batch):
        return self.stage(batch)


def apply_stage(ds: ray.data.Dataset, stage: Stage, *, gpu_available: bool | None = None) -> ray.data.Dataset:
    if gpu_available is None:
        gpu_available = torch.cuda.is_available()
    r = stage.resources
    num_gpus = r.num_gpus if gpu_available else 0  # a CPU-only cluster runs the same stage on CPU
    common = {"batch_format": "pyarrow", "batch_size": r.batch_size, "num_cpus": r.num_cpus, "num_gpus": num_gpus}
    if stage.needs_model:
        return ds.map_batches(_StageActor, fn_constructor_kwargs={"stage": stage}, concurrency=r.concurrency, **common)
    return ds.map_batches(stage, concurrency=r.concurrency, **common)
