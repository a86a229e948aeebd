"""Post-training end to end on the tiny backbone: every task trains (the loss falls), evaluates and predicts; runs
resume bit for bit; the backbone comes from a pretraining checkpoint and stays put when frozen; 2 processes train
under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from common.config import load_config
from common.training.checkpoint import latest_checkpoint
from pipelines.cli import main
from posttrain.config import TASKS, PosttrainConfig
from posttrain.run import EVAL_RESULTS, PREDICTIONS, run_eval, run_predict, run_train

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs/posttrain/tiny.yaml"
# Mean loss of the last 5 steps over the first 5, after 60 steps on 3 samples (measured: seg 0.60, pose 0.59,
# albedo 0.53, normal 0.08, pointmap 0.09); cross-entropy + Dice and the heatmap MSE fall slowest.
FALLS_TO = {"seg": 0.75, "pose": 0.75, "albedo": 0.7, "normal": 0.3, "pointmap": 0.3}


def data_overrides(task: str, data) -> list[str]:
    if task == "pose":
        sets = [f"root={data.images}", f"annotations={data.pose_annotations}"]
    else:
        sets = [f"root={data.seg if task == 'seg' else data.dense}"]
    return [f"{split}.{kv}" for split in ("train_data", "val_data") for kv in sets]


def config(task: str, data, out: Path, *extra: str):
    overrides = [f"task={task}", f"output={out}", "tensorboard=false", *data_overrides(task, data), *extra]
    return load_config(PosttrainConfig, config_path=TINY, overrides=overrides)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("task", TASKS)
def test_each_task_trains_evaluates_and_predicts(task, task_data, tmp_path):
    cfg = config(task, task_data, tmp_path, "steps=60", "augment.enabled=false", "checkpoint_every=1000")
    run = run_train(cfg)
    losses = [m["loss"] for m in run.metrics]
    assert run.step == 60 and len(losses) == 60 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < FALLS_TO[task] * np.mean(losses[:5])

    results = run_eval(cfg)
    assert json.loads((tmp_path / EVAL_RESULTS).read_text()).keys() == results.keys()
    headline = {"pose": "kpt_AP", "seg": "seg_mIoU", "pointmap": "pointmap_l2", "normal": "normal_mean_deg"}
    assert np.isfinite(results[headline.get(task, "albedo_mae")])

    files = run_predict(cfg, [str(task_data.images)], checkpoint=str(tmp_path))
    assert len(files) == 2 * 3 and all(f.parent == tmp_path / PREDICTIONS for f in files)
    for picture in (f for f in files if f.suffix == ".png" and not f.name.endswith("_seg.png")):
        assert Image.open(picture).size == (96, 128)  # back at the photo's size, not the network's
    if task == "pose":
        record = json.loads(next(f for f in files if f.suffix == ".json").read_text())
        xy = np.asarray(record["keypoints"])[:, :2]
        assert xy.shape == (17, 2) and (xy >= -1).all() and (xy[:, 0] <= 96).all() and (xy[:, 1] <= 128).all()
    if task == "seg":
        labels = np.asarray(Image.open(next(f for f in files if f.name.endswith("_seg.png"))))
        assert labels.shape == (128, 96) and set(np.unique(labels)) <= {*range(29), 255}


def test_a_resumed_run_equals_an_uninterrupted_one(task_data, tmp_path):
    # Augmentations on and a batch smaller than the set: epochs, shuffles and per-sample draws must all line up.
    whole, split = tmp_path / "whole", tmp_path / "split"
    run_train(config("pose", task_data, whole, "steps=6", "checkpoint_every=100"))
    run_train(config("pose", task_data, split, "steps=6", "checkpoint_every=2"), stop_at=3)
    resumed = run_train(config("pose", task_data, split, "steps=6", "checkpoint_every=2"), resume=True)
    assert [m["step"] for m in resumed.metrics] == [4, 5, 6]  # stop_at writes a checkpoint at step 3
    left = load_file(latest_checkpoint(whole) / "model.safetensors")
    right = load_file(latest_checkpoint(split) / "model.safetensors")
    assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_the_backbone_comes_from_pretraining_and_stays_frozen(task_data, tmp_path):
    from pretrain.objective import ObjectiveConfig
    from pretrain.train import FixedBatches, LoopConfig, OptimConfig, train

    objective = ObjectiveConfig(decoder_dim=32, decoder_depth=1, decoder_heads=2, prototypes=32, head_hidden=32)
    views = {"global": torch.rand(2, 2, 3, 64, 48), "local": torch.rand(2, 2, 3, 32, 32)}
    loop = LoopConfig(steps=2, objective=objective, optim=OptimConfig(warmup_steps=1), tensorboard=False, device="cpu")
    train(loop, FixedBatches([views]), tmp_path)
    teacher = {
        k.removeprefix("teacher."): v
        for k, v in load_file(latest_checkpoint(tmp_path) / "model.safetensors").items()
        if k.startswith("teacher.")
    }
    out = tmp_path / "seg"
    cfg = config("seg", task_data, out, "steps=3", f"backbone.checkpoint={tmp_path}", "backbone.freeze=true")
    run_train(cfg)
    after = load_file(latest_checkpoint(out) / "model.safetensors")
    for key, value in teacher.items():
        assert torch.equal(after[f"backbone.{key}"], value), key
    untrained = run_train(config("seg", task_data, tmp_path / "fresh", "steps=1", f"backbone.checkpoint={tmp_path}"))
    assert untrained.step == 1


def test_the_cli_trains_and_predicts(task_data, tmp_path, capsys):
    common = ["--task", "normal", "--config", str(TINY), f"output={tmp_path}", *data_overrides("normal", task_data)]
    assert main(["posttrain", "train", *common, "steps=4", "tensorboard=false"]) == 0
    assert "posttrain normal: step 4;" in capsys.readouterr().out
    assert (
        main(["posttrain", "predict", *common, "--checkpoint", str(tmp_path), "--inputs", str(task_data.images)]) == 0
    )
    assert sorted(p.name for p in (tmp_path / PREDICTIONS).glob("*.png")) == [
        "astronaut_normal.png", "chelsea_normal.png", "coffee_normal.png"
    ]  # fmt: skip


def test_two_processes_train_under_torchrun(task_data, tmp_path, free_port):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
    launcher += ["--master-addr", "127.0.0.1", "--master-port", str(free_port)]
    cli = ["-m", "pipelines.cli", "posttrain", "train", "--task", "seg", "--config", str(TINY)]
    overrides = [
        f"output={tmp_path}",
        "steps=3",
        "batch_size=1",
        "tensorboard=false",
        *data_overrides("seg", task_data),
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, *cli, *overrides], env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("posttrain seg: step 3;") == 1
    state = json.loads((latest_checkpoint(tmp_path) / "state.json").read_text())
    assert state["world_size"] == 2 and [r["data"]["position"] for r in state["ranks"]] == [1, 1]
