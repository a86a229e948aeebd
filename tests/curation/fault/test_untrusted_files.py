"""Weights and checkpoints are untrusted files: every loader that takes a path refuses a pickle that runs code.

Loaders of a path in the repository (torch.load, pickle and np.load nowhere else):
- curation.models.mlp_weights.read_state_dict (aesthetic MLP, NSFW head): safetensors or torch.load(weights_only=True)
- curation.models.zero_shot.LinearProbe.load: through read_state_dict
- curation.models.clip.load_clip: open_clip with weights_only=True
- common.training.checkpoint.load_checkpoint: safetensors weights, optimizer state with weights_only=True
- common.models.checkpoint.load_backbone, common.models.official: safetensors only
- curation.models.yolo.load_yolo: ultralytics unpickles whole .pt models, so the pickle's globals are checked first
"""

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from common.models.checkpoint import load_backbone
from common.training.checkpoint import load_checkpoint
from common.training.distributed import DistInfo
from curation.models.clip import load_clip
from curation.models.mlp_weights import read_state_dict
from curation.models.pickle_guard import UnsafeCheckpointError, check_model_pickle
from curation.models.registry import tiny_profile
from curation.models.yolo import load_yolo
from curation.models.zero_shot import LinearProbe


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
    with pytest.raises(UnsafeCheckpointError, match=r"yolo11n\.pt would call io\.open"):
        load_yolo(cfg, key="models.detector.weights")
    assert not marker.exists()


def test_yolo_loader_accepts_a_real_ultralytics_checkpoint(tmp_path):
    from ultralytics import YOLO

    cfg = tiny_profile().detector  # yolo11n.yaml: random weights
    model = load_yolo(cfg, key="models.detector.weights")
    model.save(str(tmp_path / "yolo11n.pt"))
    check_model_pickle(tmp_path / "yolo11n.pt")  # only torch / ultralytics modules inside
    reloaded = load_yolo(dataclasses.replace(cfg, weights=str(tmp_path / "yolo11n.pt")), key="models.detector.weights")
    assert isinstance(reloaded, YOLO) and reloaded.task == "detect"
