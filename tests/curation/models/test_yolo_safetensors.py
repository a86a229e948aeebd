"""The pickle-free production path: `humans1b models convert-yolo` writes a .pt as safetensors + metadata, the
detector and pose estimator load it without unpickling anything and predict exactly what the .pt predicts, and a
converted file whose yaml or metadata was tampered with is refused with one line."""

import dataclasses
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from common.errors import UsageError
from curation.models.registry import check_weights, tiny_profile
from curation.models.yolo import PersonDetector, PoseEstimator, load_yolo
from curation.models.yolo_safetensors import FORMAT, ConvertedYoloError, convert_yolo, read_metadata
from curation.sample_corpus.sources import photo_path
from tests.cli_runs import DEMO_CONFIG, error_line, humans1b, photo_folder


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.open(photo_path("bus")).convert("RGB"), Image.open(photo_path("zidane")).convert("RGB")]


def _sensitive(genuine: Path, out: Path) -> Path:
    """The genuine release with Kaiming-normal convolutions and spread class logits, saved with the same dict: one
    epoch of training leaves outputs that hardly depend on the pixels, which would make equality prove little."""
    ckpt = torch.load(genuine, weights_only=False)  # our own genuine file
    model = ckpt["model"].float()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.weight.shape[0] > 1:
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        for branch in model.model[-1].cv3:
            branch[-1].weight.normal_(0.0, 0.3)
    torch.save({**ckpt, "model": model.half()}, out)
    return out


@pytest.fixture(scope="module")
def detect_pt(genuine_detect, tmp_path_factory) -> Path:
    return _sensitive(genuine_detect, tmp_path_factory.mktemp("sensitive") / "yolo11n.pt")


@pytest.fixture(scope="module")
def pose_pt(genuine_pose, tmp_path_factory) -> Path:
    return _sensitive(genuine_pose, tmp_path_factory.mktemp("sensitive") / "yolo11n-pose.pt")


def test_convert_through_the_cli_then_predictions_equal_the_pt_exactly(detect_pt, pose_pt, photos, tmp_path):
    for pt, runner, base in (
        (detect_pt, PersonDetector, tiny_profile().detector),
        (pose_pt, PoseEstimator, tiny_profile().pose),
    ):
        out = tmp_path / f"{pt.stem}.safetensors"
        done = humans1b("models", "convert-yolo", str(pt), str(out))
        assert done.returncode == 0, done.stderr
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        section = "pose" if base.task == "pose" else "detector"
        assert done.stdout.strip().endswith(f"pin it with models.{section}.sha256={digest}")
        meta = read_metadata(out.read_bytes(), out)
        assert meta.task == base.task and meta.names == {0: "person"}
        assert meta.source_sha256 == hashlib.sha256(pt.read_bytes()).hexdigest()
        assert meta.kpt_shape == ([17, 3] if base.task == "pose" else None)

        cfg = dataclasses.replace(base, conf=0.0, max_det=100_000)  # every box: nothing hides a difference
        from_pt = runner(dataclasses.replace(cfg, weights=str(pt)))(photos)
        from_st = runner(dataclasses.replace(cfg, weights=str(out), sha256=digest))(photos)
        for a, b in zip(from_pt, from_st, strict=True):
            assert len(np.unique(a.conf)) > 100  # outputs that depend on the pixels
            np.testing.assert_array_equal(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.conf, b.conf)
            if base.task == "pose":
                np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_loading_a_converted_file_unpickles_nothing(detect_pt, tmp_path, monkeypatch, no_network):
    out = convert_yolo(detect_pt, tmp_path / "yolo11n.safetensors").path

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    model = load_yolo(dataclasses.replace(tiny_profile().detector, weights=str(out)), key="models.detector.weights")
    assert model.task == "detect" and model.names == {0: "person"}


def _tampered(source: Path, target: Path, change) -> Path:
    """`source` rewritten with metadata changed by `change(metadata dict)`."""
    data = source.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    metadata = dict(header["__metadata__"])
    change(metadata)
    target.write_bytes(save_tensors(load_tensors(data), metadata=metadata))
    return target


def _set_yaml(metadata: dict, edit) -> None:
    model_yaml = json.loads(metadata["yaml"])
    edit(model_yaml)
    metadata["yaml"] = json.dumps(model_yaml)


def test_tampered_converted_files_are_refused_with_one_line(detect_pt, tmp_path, photos):
    good = convert_yolo(detect_pt, tmp_path / "good.safetensors").path
    marker = tmp_path / "ran"
    cases = {
        # parse_model looks module names up in ultralytics.nn.tasks' globals: torch_load would read a pickle
        "module": (
            lambda m: _set_yaml(m, lambda y: y["backbone"][0].__setitem__(2, "torch_load")),
            "its model yaml's backbone[0] names the module 'torch_load', which no genuine model yaml uses",
        ),
        # parse_model evals `activation`; no yaml of the supported families sets it
        "activation": (
            lambda m: _set_yaml(m, lambda y: y.__setitem__("activation", f"open({str(marker)!r}, 'w')")),
            "its model yaml has the key 'activation', which no genuine model yaml has",
        ),
        # string arguments are looked up as parse_model's locals or literal-evaluated
        "argument": (
            lambda m: _set_yaml(m, lambda y: y["head"][0][3].__setitem__(0, "d")),
            "its model yaml's head[0] has the argument 'd', which no genuine model yaml uses",
        ),
        "key": (lambda m: _set_yaml(m, lambda y: y.__setitem__("text_model", "x")), "the key 'text_model'"),
        "format": (lambda m: m.__setitem__("format", "other"), f"it has no {FORMAT} metadata"),
        "names": (lambda m: m.__setitem__("names", '{"0": "person", "1": "car"}'), "it names 2 classes"),
        "shapes": (lambda m: _set_yaml(m, lambda y: y.__setitem__("scale", "x")), "its tensors do not fit"),
        "from": (
            lambda m: _set_yaml(m, lambda y: y["head"][1].__setitem__(0, [-1, 99])),
            "its model yaml's head[1] 'from' is not -1 or earlier layers",
        ),
        # genuine words that do not fit together: parse_model raises, reported as the file's problem
        "build": (
            lambda m: _set_yaml(m, lambda y: y["backbone"][0].__setitem__(3, [64, 3, "None"])),
            "its model yaml does not build (TypeError: ",
        ),
    }
    for name, (change, reason) in cases.items():
        path = _tampered(good, tmp_path / f"{name}.safetensors", change)
        with pytest.raises(ConvertedYoloError) as err:
            PersonDetector(dataclasses.replace(tiny_profile().detector, weights=str(path)))(photos[:1])
        message = str(err.value)
        assert isinstance(err.value, UsageError) and "\n" not in message, name
        assert message.startswith(f"models.detector.weights: {path}: refused: ") and reason in message, message
        assert "humans1b models convert-yolo IN.pt OUT.safetensors" in message
    assert not marker.exists()


def test_check_weights_checks_a_converted_file_in_the_driver(detect_pt, tmp_path):
    good = convert_yolo(detect_pt, tmp_path / "good.safetensors").path
    cfg = dataclasses.replace(tiny_profile(), detector=dataclasses.replace(tiny_profile().detector, weights=str(good)))
    assert check_weights(cfg, offline=True) == []
    bad = _tampered(good, tmp_path / "bad.safetensors", lambda m: m.__setitem__("task", "segment"))
    cfg = dataclasses.replace(cfg, detector=dataclasses.replace(cfg.detector, weights=str(bad)))
    with pytest.raises(ConvertedYoloError, match=r"bad\.safetensors: refused: its task 'segment' is not one of"):
        check_weights(cfg, offline=True)
    missing = dataclasses.replace(cfg.detector, weights=str(tmp_path / "none.safetensors"))
    (problem,) = check_weights(dataclasses.replace(cfg, detector=missing), offline=True)
    assert problem.startswith("models.detector.weights: weights file ") and "humans1b models convert-yolo" in problem


def test_a_hostile_yaml_through_the_cli_fails_with_exit_2_and_one_line(detect_pt, tmp_path):
    good = convert_yolo(detect_pt, tmp_path / "good.safetensors").path
    hostile = _tampered(
        good, tmp_path / "hostile.safetensors", lambda m: _set_yaml(m, lambda y: y["head"][-1].__setitem__(2, "YOLO"))
    )
    folder = photo_folder(tmp_path / "photos", "bus")
    done = humans1b(
        "curate",
        "score",
        "--config",
        str(DEMO_CONFIG),
        f"input=[{folder}]",
        f"output={tmp_path / 'out'}",
        f"models.detector.weights={hostile}",
    )
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert line.startswith(f"humans1b curate: models.detector.weights: {hostile}: refused: ")
    assert "names the module 'YOLO', which no genuine model yaml uses" in line


def test_convert_refuses_what_it_must_not_read(tmp_path):
    gadget = tmp_path / "gadget.pt"
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    torch.save({"model": Payload()}, gadget)
    done = humans1b("models", "convert-yolo", str(gadget), str(tmp_path / "out.safetensors"))
    assert done.returncode == 2 and not marker.exists() and not (tmp_path / "out.safetensors").exists()
    line = error_line(done.stderr)
    assert line.startswith(f"humans1b models: {gadget}: refused: its pickle data.pkl calls io.open with arguments")
    with pytest.raises(UsageError, match=r"convert-yolo reads a \.pt and writes a \.safetensors"):
        convert_yolo(gadget, tmp_path / "out.onnx")


def test_every_genuine_model_yaml_passes_the_converted_file_check():
    from ultralytics.nn.tasks import yaml_model_load

    from curation.models.yolo_genuine import FAMILIES, SCALES, model_yamls
    from curation.models.yolo_safetensors import check_model_yaml

    for name, _ in model_yamls(FAMILIES, SCALES):
        check_model_yaml({**yaml_model_load(name), "channels": 3})  # as a built model holds it
