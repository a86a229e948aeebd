"""`humans1b pretrain` on 2 processes through both launchers, on real shards: torchrun and Ray Train's TorchTrainer
run the same loop and end with the same weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from common.config import load_config
from common.training.checkpoint import latest_checkpoint
from pretrain.config import PretrainConfig
from pretrain.ray_train import run_pretrain_ray

REPO = Path(__file__).resolve().parents[3]
OVERRIDES = [
    "steps=3", "batch_size=2", "num_workers=1", "shuffle_buffer=4", "checkpoint_every=10", "tensorboard=false",
    "crops.global_size=[64,48]", "crops.local_size=[32,32]", "crops.num_local=2", "device=cpu",
    "objective.decoder_dim=32", "objective.decoder_depth=1", "objective.decoder_heads=2", "objective.prototypes=32",
    "objective.head_hidden=32", "objective.head_bottleneck=16", "optim.warmup_steps=1",
    "teacher_temp_warmup_steps=2", "ray_train.workers=2", "ray_train.cpus_per_worker=1",
]  # fmt: skip


def test_torchrun_and_ray_train_make_the_same_run(shard_set, tmp_path, ray_local, free_port):
    ours = [*OVERRIDES, f"shards=[{shard_set.dir}]"]
    by_torchrun, by_ray = tmp_path / "torchrun", tmp_path / "ray"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
    cli = ["-m", "pipelines.cli", "pretrain", "--config", str(REPO / "configs/pretrain/tiny.yaml")]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [*launcher, "--master-addr", "127.0.0.1", "--master-port", str(free_port), *cli, *ours]
    done = subprocess.run([*command, f"output={by_torchrun}"], env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("pretrain: step 3;") == 1  # rank 0 speaks for both

    cfg = load_config(
        PretrainConfig, config_path=REPO / "configs/pretrain/tiny.yaml", overrides=[*ours, f"output={by_ray}"]
    )
    result = run_pretrain_ray(cfg, address=ray_local.address)
    assert result.step == 3 and [m["step"] for m in result.metrics] == [1, 2, 3]

    left = load_file(latest_checkpoint(by_torchrun) / "model.safetensors")
    right = load_file(latest_checkpoint(by_ray) / "model.safetensors")
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=1e-5, atol=1e-7, msg=key)
    state = json.loads((latest_checkpoint(by_ray) / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    # Each rank streamed its own shards: together they saw 3 steps x 2 ranks x 2 samples, none twice.
    assert sum(r["data"]["samples"] for r in state["ranks"]) == 12
