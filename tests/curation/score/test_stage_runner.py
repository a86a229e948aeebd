"""apply_stage turns a stage's resources into Ray Data compute strategies; plans are inspected, not run, for the
clusters this machine is not."""

import logging

import pyarrow as pa
import ray.data
from ray.data import ActorPoolStrategy, TaskPoolStrategy

from curation.score.stage_runner import apply_stage
from curation.stages.base import REJECT_REASON, Stage, StageResult
from curation.stages.resources import AUTO, StageResources


class Double(Stage):
    name = "double"
    fields = [pa.field("twice", pa.int64())]  # noqa: RUF012 - a test stage

    def __init__(self, resources, needs_model):
        super().__init__(resources)
        self.needs_model = needs_model

    def process(self, batch):
        return StageResult(columns={"twice": [2 * v for v in batch["value"].to_pylist()]})


def rows(n=6):
    return pa.table(
        {"key": [f"k{i}" for i in range(n)], "value": list(range(n)), REJECT_REASON: pa.nulls(n, pa.string())}
    )


def last_op(ds):
    return ds._logical_plan.dag  # the map_batches just added


GPU_STAGE = StageResources(num_cpus=1, num_gpus=0.1, batch_size=2, max_workers=AUTO)


def test_on_a_cpu_only_ray_stages_ask_no_gpu_and_pools_stay_at_the_floor(ray_local, caplog):
    ds = ray.data.from_arrow(rows())
    caplog.set_level(logging.WARNING, logger="ray.data")
    op = last_op(apply_stage(ds, Double(GPU_STAGE, needs_model=True)))
    assert op.ray_remote_args["num_gpus"] == 0
    assert isinstance(op.compute, ActorPoolStrategy) and (op.compute.min_size, op.compute.max_size) == (1, 1)
    op = last_op(apply_stage(ds, Double(StageResources(max_workers=2), needs_model=False)))
    assert isinstance(op.compute, TaskPoolStrategy) and op.compute.size == 2
    assert "deprecated" not in caplog.text  # map_batches(concurrency=...) is, since Ray 2.51


def test_on_a_gpu_cluster_pools_grow_to_what_the_gpus_allow(ray_local):
    ds = ray.data.from_arrow(rows())
    cluster = {"CPU": 96.0, "GPU": 8.0}
    op = last_op(apply_stage(ds, Double(GPU_STAGE, needs_model=True), cluster=cluster))
    assert op.ray_remote_args["num_gpus"] == 0.1
    assert (op.compute.min_size, op.compute.max_size) == (1, 80)
    op = last_op(apply_stage(ds, Double(StageResources(max_workers=AUTO), needs_model=False), cluster=cluster))
    assert isinstance(op.compute, TaskPoolStrategy) and op.compute.size is None


def test_both_pools_run_every_row(ray_local):
    ds = ray.data.from_arrow(rows())
    ds = apply_stage(ds, Double(StageResources(max_workers=2), needs_model=False))
    ds = apply_stage(ds, Double(GPU_STAGE, needs_model=True))
    assert sorted(row["twice"] for row in ds.take_all()) == [0, 2, 4, 6, 8, 10]
