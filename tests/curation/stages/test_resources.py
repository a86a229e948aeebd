import pytest

from curation.stages.resources import AUTO, GPUS_PER_CPU_WORKER, PoolSize, StageResources, pool_size, stage_device


@pytest.mark.parametrize(
    ("num_gpus", "gpus", "expected"),
    [
        (0.1, 0, 2),  # no GPUs: the floor
        (0.1, 1, 10),
        (0.1, 8, 80),  # 8 / 0.1 is 79.999... in floating point
        (1 / 3, 8, 24),
        (0.25, 800, 3200),
        (1.0, 3, 3),
    ],
)
def test_auto_pools_take_what_the_gpus_allow(num_gpus, gpus, expected):
    r = StageResources(num_gpus=num_gpus, min_workers=2, max_workers=AUTO)
    assert pool_size(r, {"CPU": 96.0, "GPU": float(gpus)}, needs_model=True) == PoolSize(2, expected)


@pytest.mark.parametrize(("gpus", "expected"), [(0, 1), (1, 1), (4, 1), (8, 2), (800, 200)])
def test_auto_pools_of_cpu_model_stages_grow_with_the_gpus(gpus, expected):
    r = StageResources(num_cpus=0.5, num_gpus=0, max_workers=AUTO)
    assert pool_size(r, {"CPU": 96.0, "GPU": float(gpus)}, needs_model=True).max_size == expected
    assert expected == max(1, -(-gpus // GPUS_PER_CPU_WORKER))


def test_fixed_pools_and_task_pools():
    fixed = StageResources(min_workers=2, max_workers=5)
    assert pool_size(fixed, {"GPU": 8.0}, needs_model=True) == PoolSize(2, 5)
    assert pool_size(fixed, {"GPU": 8.0}, needs_model=False) == PoolSize(1, 5)  # tasks: at most 5 at once
    assert pool_size(StageResources(max_workers=AUTO), {"GPU": 8.0}, needs_model=False) == PoolSize(1, None)


@pytest.mark.parametrize("bad", ["many", 1])
def test_max_workers_must_be_auto_or_at_least_the_floor(bad):
    with pytest.raises(ValueError, match="max_workers"):
        StageResources(min_workers=2, max_workers=bad)


def test_auto_device_is_cpu_for_stages_without_gpus():
    assert stage_device("auto", StageResources(num_gpus=0)) == "cpu"
    assert stage_device("auto", StageResources(num_gpus=0.1)) == "auto"  # CUDA when the actor has one
    assert stage_device("cuda:1", StageResources(num_gpus=0)) == "cuda:1"  # as configured
