"""Stages grouped into one worker share their decodes: an image is decoded twice instead of five times, and every
column, rejection and stage time is what the stages give one by one."""

import pyarrow as pa
import pytest

import curation.stages.pixels as pixels
from common.config import to_object
from curation.config import load_curate_config
from curation.sample_corpus.sources import photo_path
from curation.score.runner import build_stages
from curation.score.stage_groups import StageGroup, group_stages, merged_resources
from curation.stages.base import REJECT_REASON
from curation.stages.resources import AUTO, StageResources
from curation.stages.stage_nodes import NODE_PREFIX
from tests.cli_runs import DEMO_CONFIG

PHOTOS = ("bus", "zidane", "astronaut", "coffee", "rocket", "grace_hopper")


@pytest.fixture(scope="module")
def stages():
    cfg = to_object(load_curate_config(DEMO_CONFIG, ["input=[/data/in]", "output=/data/out"]))
    return build_stages(cfg)


def photos() -> pa.Table:
    keys = [f"k{i}" for i in range(len(PHOTOS))] + ["broken"]
    images = [photo_path(name).read_bytes() for name in PHOTOS] + [photo_path("bus").read_bytes()[:2000]]
    return pa.table({"key": keys, "image": images, REJECT_REASON: pa.nulls(len(keys), pa.string())})


def counting_decodes(monkeypatch) -> list[int]:
    calls = [0]
    decode = pixels.decode_image

    def counted(*args, **kwargs):
        calls[0] += 1
        return decode(*args, **kwargs)

    monkeypatch.setattr(pixels, "decode_image", counted)
    return calls


def comparable(table: pa.Table) -> pa.Table:
    """Without the per-run columns: seconds and node ids."""
    return table.drop_columns([n for n in table.column_names if n == "stage_seconds" or n.startswith(NODE_PREFIX)])


def test_the_pixel_stages_form_two_groups(stages):
    units = group_stages(stages)
    assert [u.name for u in units] == ["decode+phash", "detect+head_pose+clip", "aesthetic", "nsfw", "zero_shot"]
    assert [isinstance(u, StageGroup) for u in units] == [True, True, False, False, False]
    assert not units[0].needs_model and units[1].needs_model
    assert group_stages(stages[1:])[0].name == "phash"  # a group missing a stage stays apart


def test_a_grouped_run_decodes_each_image_twice_and_matches_the_stages_one_by_one(stages, monkeypatch):
    calls = counting_decodes(monkeypatch)
    batch = photos()
    alone = batch
    for stage in stages:
        alone = stage(alone)
    kept = alone[REJECT_REASON].to_pylist().count(None)
    assert kept == len(PHOTOS) and alone[REJECT_REASON].to_pylist()[-1] == "truncated"
    assert calls[0] == len(batch) + 4 * kept  # decode validates every row; phash, detect, pose and CLIP decode again
    calls[0] = 0
    grouped = batch
    for unit in group_stages(stages):
        grouped = unit(grouped)
    assert calls[0] == len(batch) + kept  # once in the decode group, once in the model group
    assert comparable(grouped).equals(comparable(alone))
    assert [name for name, _ in grouped["stage_seconds"][0].as_py()] == [s.name for s in stages]


def test_a_group_runs_each_stage_at_its_own_batch_size(stages, monkeypatch):
    seen = []
    phash = stages[1]
    process = phash.process
    monkeypatch.setattr(phash, "process", lambda b: seen.append(b.num_rows) or process(b))
    monkeypatch.setattr(phash.resources, "batch_size", 3)
    StageGroup(stages[:2])(photos())
    assert seen == [3, 3]  # 7 rows in slices of 3; the truncated one never reaches phash


def test_merged_resources_add_gpu_shares_and_keep_the_largest_of_the_rest():
    merged = merged_resources(
        [
            StageResources(num_cpus=1, num_gpus=0.5, batch_size=16, min_workers=1, max_workers=4),
            StageResources(num_cpus=2, num_gpus=0.25, batch_size=64, min_workers=2, max_workers=AUTO),
            StageResources(num_cpus=0.5, num_gpus=0.5, batch_size=8),
        ]
    )
    assert (merged.num_cpus, merged.num_gpus, merged.batch_size, merged.min_workers, merged.max_workers) == (
        2,
        1.0,
        64,
        2,
        AUTO,
    )
