"""Weights and checkpoints are untrusted files: every loader that takes a path refuses a pickle that runs code.

Loaders of a path in the repository (torch.load, pickle and np.load nowhere else):
- curation.models.mlp_weights.read_state_dict (aesthetic MLP, NSFW head): safetensors or torch.load(weights_only=True)
- curation.models.zero_shot.LinearProbe.load: through read_state_dict
- curation.models.clip.load_clip: open_clip with weights_only=True
- common.training.checkpoint.load_checkpoint: safetensors weights, optimizer state with weights_only=True
- common.models.checkpoint.load_backbone, common.models.official: safetensors only
- curation.models.yolo.load_yolo: ultralytics unpickles whole .pt models, so every pickle in the file is checked
  statically against the allowlist of genuine checkpoints first (curation/models/pickle_guard.py), and the checked
  bytes are what ultralytics loads; converted .safetensors load with no pickle at all
"""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from common.models.checkpoint import load_backbone
from common.training.checkpoint import load_checkpoint
from common.training.distributed import DistInfo
from curation.models.clip import load_clip
from curation.models.mlp_weights import read_state_dict
from curation.models.pickle_guard import UnsafeCheckpointError, check_checkpoint
from curation.models.registry import tiny_profile
from curation.models.yolo import load_yolo
from curation.models.zero_shot import LinearProbe
from tests.cli_runs import DEMO_CONFIG, error_line, humans1b, photo_folder


class Payload:
    """Unpickling this creates `marker`: the proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def payload(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(4), "bias": Payload(marker)}, path)  # a torch file, as a real one looks
    return path, marker


def _check_refused(load, payload: tuple[Path, Path]) -> None:
    path, marker = payload
    with pytest.raises(Exception) as refused:
        load(path)
    assert not marker.exists(), f"the payload ran: {refused.value!r}"


def test_aesthetic_and_probe_loaders_refuse_a_pickle_payload(payload):
    _check_refused(read_state_dict, payload)
    _check_refused(LinearProbe.load, payload)
    path, marker = payload
    raw = path.with_suffix(".pkl")
    raw.write_bytes(pickle.dumps(Payload(marker)))  # a bare pickle, not even a torch zip
    _check_refused(read_state_dict, (raw, marker))


def test_clip_loader_refuses_a_pickle_payload(payload):
    clip = tiny_profile().clip
    _check_refused(lambda p: load_clip(dataclasses.replace(clip, pretrained=str(p))), payload)


def test_training_checkpoint_refuses_a_pickled_optimizer(payload, tmp_path):
    model = torch.nn.Linear(2, 2)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_file(model.state_dict(), ckpt / "model.safetensors")
    (ckpt / "state.json").write_text(json.dumps({"world_size": 1, "ranks": [{}]}))
    payload[0].rename(ckpt / "optimizer.pt")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _check_refused(lambda _: load_checkpoint(ckpt, model, optimizer, DistInfo()), (ckpt / "optimizer.pt", payload[1]))


def test_safetensors_only_loaders_refuse_a_pickle(payload):
    _check_refused(lambda p: load_backbone(torch.nn.Linear(4, 1), p), payload)


def test_yolo_loader_refuses_a_pickle_payload(payload, tmp_path):
    path, marker = payload
    weights = tmp_path / "yolo11n.pt"
    path.rename(weights)
    cfg = dataclasses.replace(tiny_profile().detector, weights=str(weights))
    with pytest.raises(UnsafeCheckpointError) as refused:
        load_yolo(cfg, key="models.detector.weights")
    assert str(refused.value).startswith(
        f"models.detector.weights: {weights}: refused: its pickle data.pkl calls io.open with arguments, which no "
        "genuine ultralytics detect or pose checkpoint does; nothing in it was run."
    )
    assert not marker.exists()


def test_yolo_loader_accepts_a_real_ultralytics_checkpoint(tmp_path):
    from ultralytics import YOLO

    release = tmp_path / "yolo11n.pt"  # trained one epoch and stripped by ultralytics itself, as a release is
    command = ["-m", "curation.models.yolo_genuine", "checkpoint", "--model", "yolo11n.yaml", str(release)]
    subprocess.run([sys.executable, *command], check=True, capture_output=True, env={**os.environ})
    check_checkpoint(release.read_bytes(), release)  # only what genuine checkpoints hold
    cfg = dataclasses.replace(tiny_profile().detector, weights=str(release))
    reloaded = load_yolo(cfg, key="models.detector.weights")
    assert isinstance(reloaded, YOLO) and reloaded.task == "detect" and reloaded.names == {0: "person"}


# --- through the real CLI: a hostile weights file fails `humans1b curate score` in the driver, before Ray -----------


class Reduce:
    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _score_with_weights(weights: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    folder = photo_folder(tmp_path / "photos", "zidane")
    args = [f"input=[{folder}]", f"output={tmp_path / 'out'}", f"models.detector.weights={weights}"]
    return humans1b("curate", "score", "--config", str(DEMO_CONFIG), *args)


def _autobackend_gadget(tmp_path: Path, marker: Path) -> Path:
    """The reported hole: the outer pickle names only AutoBackend (an nn.Module under ultralytics.nn), called with
    the path of a second file, which AutoBackend loads with full pickle."""
    from ultralytics.nn.autobackend import AutoBackend

    second = tmp_path / "second.pt"
    torch.save({"model": Reduce(open, str(marker), "w")}, second)
    gadget = tmp_path / "gadget.pt"
    torch.save({"model": Reduce(AutoBackend, str(second)), "ema": None}, gadget)
    return gadget


def _exec_gadget(tmp_path: Path, marker: Path) -> Path:
    gadget = tmp_path / "exec.pt"
    torch.save({"model": Reduce(exec, f"open({str(marker)!r}, 'w')"), "ema": None}, gadget)
    return gadget


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (_autobackend_gadget, "calls ultralytics.nn.autobackend.AutoBackend with arguments"),
        (_exec_gadget, "calls builtins.exec with arguments"),
    ],
    ids=["autobackend", "exec"],
)
def test_hostile_yolo_weights_fail_the_score_cli_at_once(make, refused, tmp_path):
    marker = tmp_path / "payload-ran"
    gadget = make(tmp_path, marker)
    with pytest.raises(BaseException):  # noqa: B017 - the control: unchecked, the gadget does run its payload
        torch.load(gadget, weights_only=False)
        raise RuntimeError("loaded")
    assert marker.exists()
    marker.unlink()

    done = _score_with_weights(gadget, tmp_path)
    assert done.returncode == 2, done.stderr
    line = error_line(done.stderr)
    assert line.startswith(
        f"humans1b curate: models.detector.weights: {gadget}: refused: its pickle data.pkl {refused}"
    )
    assert "humans1b models convert-yolo IN.pt OUT.safetensors" in line and "models.detector.sha256=" in line
    assert not marker.exists()
    assert not (tmp_path / "out" / "candidates").exists()  # refused in the driver, before Ray and any stage
