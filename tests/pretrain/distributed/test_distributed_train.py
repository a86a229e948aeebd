"""The pretraining loop on 2 CPU processes (torchrun, gloo): DDP and FSDP2 make the same updates as one process on
the whole batch, and a 2-process run resumes from its checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from common.training.checkpoint import latest_checkpoint

WORKER = Path(__file__).with_name("train_worker.py")
STEPS = 4


def run(out: Path, *extra: str, processes: int = 1, port: int = 0) -> None:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    if processes == 1:
        cmd = [sys.executable, str(WORKER)]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(processes)]
        cmd = [*launcher, "--master-addr", "127.0.0.1", "--master-port", str(port), str(WORKER)]
    done = subprocess.run([*cmd, str(out), "--steps", str(STEPS), *extra], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(out) / "model.safetensors")


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    run(out)
    return out


def assert_same_run(a: Path, b: Path) -> None:
    left, right = weights(a), weights(b)
    assert left.keys() == right.keys()
    for key in left:  # summation order differs across ranks: equal up to float rounding
        torch.testing.assert_close(left[key], right[key], rtol=1e-4, atol=1e-6, msg=key)
    assert losses(a) == pytest.approx(losses(b), rel=1e-5)


def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(single, tmp_path, free_port):
    run(tmp_path, "--strategy", "ddp", processes=2, port=free_port)
    assert_same_run(single, tmp_path)
    state = json.loads((latest_checkpoint(tmp_path) / "state.json").read_text())
    assert state["world_size"] == 2 and [r["data"]["position"] for r in state["ranks"]] == [STEPS, STEPS]


def test_fsdp_on_two_processes_stops_resumes_and_equals_one_process(single, tmp_path, free_port):
    run(tmp_path, "--strategy", "fsdp", "--stop-at", "2", processes=2, port=free_port)
    assert latest_checkpoint(tmp_path).name == "step_00000002"
    run(tmp_path, "--strategy", "fsdp", "--resume", processes=2, port=free_port)
    assert_same_run(single, tmp_path)


def test_resuming_with_another_world_size_is_refused(single, tmp_path, free_port):
    out = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(single), str(out)], check=True)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
    cmd = [*launcher, "--master-addr", "127.0.0.1", "--master-port", str(free_port), str(WORKER), str(out)]
    done = subprocess.run([*cmd, "--steps", "6", "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "written by 1 processes but this run has 2" in done.stderr
