"""A pretraining run on real shards through the streaming loader: stopped, resumed, equal to an uninterrupted run."""

import json

import torch
from safetensors.torch import load_file

from common.config import load_config
from common.training.checkpoint import latest_checkpoint
from pretrain.config import PretrainConfig
from pretrain.run import run_pretrain

OVERRIDES = [
    "steps=6", "batch_size=2", "num_workers=1", "shuffle_buffer=4", "checkpoint_every=2", "tensorboard=false",
    "crops.global_size=[64,48]", "crops.local_size=[32,32]", "crops.num_local=2", "device=cpu",
    "objective.decoder_dim=32", "objective.decoder_depth=1", "objective.decoder_heads=2", "objective.prototypes=32",
    "objective.head_hidden=32", "objective.head_bottleneck=16", "optim.warmup_steps=2",
    "teacher_temp_warmup_steps=2",
]  # fmt: skip


def config(shards, out):
    return load_config(PretrainConfig, overrides=[*OVERRIDES, f"shards=[{shards}]", f"output={out}"])


def test_a_resumed_run_on_shards_equals_an_uninterrupted_one(shard_set, tmp_path):
    torch.set_num_threads(1)
    whole, split = tmp_path / "whole", tmp_path / "split"
    run_pretrain(config(shard_set.dir, whole))
    run_pretrain(config(shard_set.dir, split), stop_at=3)  # 6 shards' worth of batches: stops inside an epoch
    resumed = run_pretrain(config(shard_set.dir, split), resume=True)
    assert resumed.step == 6 and [m["step"] for m in resumed.metrics] == [4, 5, 6]
    left = load_file(latest_checkpoint(whole) / "model.safetensors")
    right = load_file(latest_checkpoint(split) / "model.safetensors")
    assert all(torch.equal(left[k], right[k]) for k in left)
    state = json.loads((latest_checkpoint(split) / "state.json").read_text())
    assert (
        state["step"] == 6
        and state["ranks"][0]["data"]["skipped"]
        == json.loads((latest_checkpoint(whole) / "state.json").read_text())["ranks"][0]["data"]["skipped"]
    )
