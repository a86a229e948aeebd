"""configs/curation/*.yaml load through the project's loader and resolve to the designed layout."""

from pathlib import Path

import pytest

from common.config import ConfigError, to_object
from curation.config import load_curate_config
from curation.score.runner import build_stages
from curation.score.stage_groups import group_stages
from curation.stages.resources import AUTO, PoolSize, pool_size

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "curation"
IMAGE_MODELS = ("detect", "head_pose", "clip")
HEADS = ("aesthetic", "nsfw", "zero_shot")


def load(name, *overrides):
    return to_object(load_curate_config(CONFIGS / name, ["input=[/data/in]", "output=/data/out", *overrides]))


def test_production_config_resolves_to_the_gpu_layout():
    cfg = load("production.yaml")
    assert cfg.profile == "production" and cfg.models.clip.model == "ViT-L-14"
    assert cfg.models.clip.precision == AUTO and cfg.models.detector.batch_size == 32
    for name in IMAGE_MODELS:
        r = getattr(cfg.stages, name).resources
        assert (r.num_cpus, r.num_gpus, r.batch_size, r.min_workers, r.max_workers) == (1, 0.1, 64, 1, AUTO)
    for name in HEADS:
        r = getattr(cfg.stages, name).resources
        assert (r.num_cpus, r.num_gpus, r.batch_size, r.max_workers) == (0.5, 0, 1024, AUTO)
        assert getattr(cfg.stages, name).mode == "reject"
    for name in ("decode", "phash"):
        assert getattr(cfg.stages, name).resources.max_workers == AUTO


@pytest.mark.parametrize(
    ("nodes", "image_models_max", "head_max"),
    [(0, 1, 1), (1, 26, 2), (8, 213, 16), (100, 2666, 200)],  # docs/SCALING.md, "Actor layout"
)
def test_production_pools_scale_with_the_gpus(nodes, image_models_max, head_max):
    cluster = {"CPU": 96.0 * max(nodes, 1), "GPU": 8.0 * nodes}  # nodes=0: one CPU-only node
    sizes = {
        s.name: pool_size(s.resources, cluster, needs_model=s.needs_model)
        for s in group_stages(build_stages(load("production.yaml")))
    }
    # detect, head pose and CLIP share one actor (and one decode): 0.1 + 0.1 + 0.1 GPU each
    assert sizes["+".join(IMAGE_MODELS)] == PoolSize(1, image_models_max)
    assert {sizes[n] for n in HEADS} == {PoolSize(1, head_max)}
    assert sizes["decode+phash"] == PoolSize(1, None)  # a task pool: Ray Data sizes it by free CPUs


def test_demo_config_keeps_one_actor_per_model_stage_on_any_cluster():
    cfg = load("demo.yaml")
    assert cfg.profile == "tiny" and cfg.models.clip.precision == AUTO
    for stage in build_stages(cfg):
        if stage.needs_model:
            assert pool_size(stage.resources, {"CPU": 96.0, "GPU": 8.0}, needs_model=True) == PoolSize(1, 1)
    assert cfg.stages.decode.resources.max_workers == 2 and cfg.stages.zero_shot.resources.num_gpus == 0
    units = group_stages(build_stages(cfg))
    assert sum(s.resources.num_cpus * s.resources.min_workers for s in units if s.needs_model) <= 1


def test_the_old_concurrency_key_names_its_replacement():
    with pytest.raises(ConfigError, match="min_workers: N, max_workers: N"):
        load("demo.yaml", "stages.detect.resources.concurrency=3")


@pytest.mark.parametrize("value", ["many", "0"])
def test_max_workers_is_checked_at_load(value):
    with pytest.raises(ConfigError, match=r"stages\.clip\.resources\.max_workers"):
        load_curate_config(CONFIGS / "demo.yaml", ["output=/data/out", f"stages.clip.resources.max_workers={value}"])
