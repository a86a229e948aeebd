"""The static pickle check of YOLO .pt files: gadgets of every kind are refused before anything in them runs (each
is first shown to run its payload under a plain torch.load), genuine checkpoints pass and load, and the allowlist is
exactly what genuine checkpoints of the installed ultralytics contain."""

import _compat_pickle
import builtins
import dataclasses
import importlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from common.errors import UsageError
from curation.models.pickle_guard import (
    ALLOWLIST_PATH,
    CALL,
    FILL,
    NEW,
    ROOT,
    VALUE,
    UnsafeCheckpointError,
    allowlist,
    check_checkpoint,
)
from curation.models.registry import tiny_profile
from curation.models.yolo import load_yolo
from curation.models.yolo_genuine import FAMILIES, SCALES, model_yamls, yaml_vocabulary

KEY = "models.detector.weights"
ADVICE = "humans1b models convert-yolo IN.pt OUT.safetensors"


class Reduce:
    """Pickles as `func(*args)`: how a gadget makes the unpickler call something (`func` may be another Reduce:
    pickle only asks that it be callable)."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self):
        raise AssertionError("never called here")


class WritesOnSetstate:
    """A class whose __setstate__ does I/O: pickled the standard way, NEWOBJ with no arguments and BUILD."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("ran")


def _torch_file(tmp_path: Path, name: str, obj, protocol: int = 2) -> Path:
    path = tmp_path / name
    torch.save({"model": obj, "ema": None, "modelopt": None}, path, pickle_protocol=protocol)  # like a release
    return path


def _payload_file(tmp_path: Path, marker: Path) -> Path:
    """A second file whose unpickling creates `marker`."""
    return _torch_file(tmp_path, "second.pt", Reduce(open, str(marker), "w"))


def _gadgets(tmp_path: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """name -> (gadget file, the global its refusal must name)."""
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.nn.modules.conv import Conv
    from ultralytics.utils.patches import torch_load as ultralytics_torch_load

    second = _payload_file(tmp_path, marker)
    inner = pickle.dumps(Reduce(open, str(marker), "w"), protocol=2)
    return {
        # the reported hole: a class under ultralytics.nn whose constructor loads a second file with full pickle
        "autobackend": (_torch_file(tmp_path, "autobackend.pt", Reduce(AutoBackend, str(second))), AutoBackend),
        "setstate": (_torch_file(tmp_path, "setstate.pt", WritesOnSetstate(str(marker))), WritesOnSetstate),
        # an allowlisted class, but called with arguments instead of rebuilt from its state
        "allowlisted_class_called": (_torch_file(tmp_path, "conv.pt", Reduce(Conv, 3, 16)), Conv),
        # protocol 4: at torch's default 2, the inner bytes would be rebuilt by a call to _codecs.encode first
        "pickle_loads": (_torch_file(tmp_path, "loads.pt", Reduce(pickle.loads, inner), 4), pickle.loads),
        # ultralytics' torch.load wrapper (weights_only=False) on the second file
        "torch_load": (
            _torch_file(tmp_path, "torch_load.pt", Reduce(ultralytics_torch_load, str(second))),
            ultralytics_torch_load,
        ),
        # torch.serialization.load itself (torch >= 2.6 defaults it to weights_only=True, but it is never allowed)
        "torch_serialization": (
            _torch_file(tmp_path, "serialization.pt", Reduce(torch.serialization.load, str(second))),
            torch.serialization.load,
        ),
        "exec": (_torch_file(tmp_path, "exec.pt", Reduce(exec, f"open({str(marker)!r}, 'w')")), exec),
        "eval": (_torch_file(tmp_path, "eval.pt", Reduce(eval, f"open({str(marker)!r}, 'w')")), eval),
        "getattr": (_torch_file(tmp_path, "getattr.pt", _getattr_chain(marker)), getattr),
        "os_system": (_torch_file(tmp_path, "system.pt", Reduce(os.system, f"touch {marker}")), os.system),
        "io_open": (_torch_file(tmp_path, "open.pt", Reduce(io.open, str(marker), "w")), io.open),
    }


def _getattr_chain(marker: Path) -> "Reduce":
    """getattr(getitem(getattr(torch.load, "__globals__"), "os"), "system")("touch marker"): no global beyond
    getattr, operator.getitem and a function torch allows."""
    import operator

    module_globals = Reduce(getattr, torch.load, "__globals__")
    system = Reduce(getattr, Reduce(operator.getitem, module_globals, "os"), "system")
    return Reduce(system, f"touch {marker}")


def _name(obj) -> str:
    """The name pickle writes for a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def _check(path: Path):
    check_checkpoint(path.read_bytes(), path, key=KEY)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


def test_every_gadget_runs_its_payload_under_a_plain_torch_load(tmp_path, marker):
    """The control: without the check, each gadget file does create the marker (so the tests below can fail)."""
    for name, (path, _) in _gadgets(tmp_path, marker).items():
        # no payload of their own: Conv(3, 16) builds a layer; torch >= 2.6 defaults torch.load to weights_only=True
        if name in ("allowlisted_class_called", "torch_serialization"):
            continue
        with pytest.raises(BaseException):  # noqa: B017 - payloads break the load afterwards; only the marker counts
            torch.load(path, weights_only=False)
            raise RuntimeError("loaded")
        assert marker.exists(), name
        marker.unlink()


@pytest.mark.parametrize(
    "gadget",
    [
        "autobackend",
        "setstate",
        "allowlisted_class_called",
        "pickle_loads",
        "torch_load",
        "torch_serialization",
        "exec",
        "eval",
        "getattr",
        "os_system",
        "io_open",
    ],
)
def test_gadget_is_refused_by_the_loader_naming_file_and_global(gadget, tmp_path, marker, no_network):
    path, refused = _gadgets(tmp_path, marker)[gadget]
    cfg = dataclasses.replace(tiny_profile().detector, weights=str(path))
    with pytest.raises(UnsafeCheckpointError) as err:
        load_yolo(cfg, key=KEY)
    message = str(err.value)
    assert isinstance(err.value, UsageError) and "\n" not in message
    assert message.startswith(f"{KEY}: {path}: refused: its pickle data.pkl ")
    assert re.search(rf" {re.escape(_name(refused))}[ ,]", message), message
    assert ADVICE in message and "models.detector.sha256=" in message
    assert not marker.exists()


def test_the_refusal_says_how_the_global_is_used(tmp_path, marker):
    gadgets = _gadgets(tmp_path, marker)
    expected = {
        "autobackend": "calls ultralytics.nn.autobackend.AutoBackend with arguments",
        "setstate": f"creates an instance of {_name(WritesOnSetstate)}",
        "allowlisted_class_called": "calls class ultralytics.nn.modules.conv.Conv with arguments",
        "exec": "calls builtins.exec with arguments",
        "getattr": "calls builtins.getattr with arguments",
        "os_system": f"calls {os.system.__module__}.system with arguments",
    }
    for name, text in expected.items():
        with pytest.raises(UnsafeCheckpointError, match=f"its pickle data.pkl {text}, which no genuine"):
            _check(gadgets[name][0])


def _zip_with_extra_record(source: Path, target: Path, record: str, payload: bytes) -> Path:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        prefix = zin.namelist()[0].split("/")[0]
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        zout.writestr(f"{prefix}/{record}", payload)
    return target


def test_a_payload_in_another_pickle_record_of_the_archive_is_refused(genuine_detect, tmp_path, marker):
    extra = pickle.dumps(Reduce(open, str(marker), "w"), protocol=2)
    path = _zip_with_extra_record(genuine_detect, tmp_path / "extra.pt", "extra.pkl", extra)
    with pytest.raises(UnsafeCheckpointError, match=r"its pickle extra\.pkl calls io\.open with arguments"):
        _check(path)
    # a TorchScript archive (torch.load hands it to torch.jit.load) or any other unknown record: refused too
    path = _zip_with_extra_record(genuine_detect, tmp_path / "script.pt", "code/__torch__.py", b"def f(): pass\n")
    with pytest.raises(UnsafeCheckpointError, match=r"its archive holds code/__torch__\.py, which torch\.save does"):
        _check(path)
    assert not marker.exists()


def test_legacy_non_zip_format_is_checked_pickle_by_pickle(genuine_detect, tmp_path, marker):
    ckpt = torch.load(genuine_detect, weights_only=False)  # our own genuine file
    legacy = tmp_path / "legacy.pt"
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:4] != b"PK\x03\x04"
    _check(legacy)  # genuine content in the old format passes (classes arrive as persistent ids with their source)
    model = load_yolo(dataclasses.replace(tiny_profile().detector, weights=str(legacy)), key=KEY)
    assert model.task == "detect" and model.names == {0: "person"}
    gadget = tmp_path / "legacy-gadget.pt"
    torch.save(
        {**ckpt, "train_args": Reduce(exec, f"open({str(marker)!r}, 'w')")},
        gadget,
        _use_new_zipfile_serialization=False,
    )
    with pytest.raises(UnsafeCheckpointError, match=r"its object pickle calls builtins\.exec with arguments"):
        _check(gadget)
    # the magic-number pickle is read with plain pickle.load before anything else: no global may appear there
    first = pickle.dumps(Reduce(open, str(marker), "w"), protocol=2)
    head = tmp_path / "legacy-head.pt"
    head.write_bytes(first + legacy.read_bytes())
    with pytest.raises(UnsafeCheckpointError, match=r"its magic number pickle calls io\.open with arguments"):
        _check(head)
    assert not marker.exists()


def test_structural_tricks_are_refused(genuine_detect, tmp_path):
    def raw(name: str, body: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(body)
        return path

    # extension registry, INST (constructor call), a tar archive (torch's pre-1.0 loader), and not a checkpoint
    cases = {
        "ext.pt": (b"\x80\x02\x82\x01.", "uses the copyreg extension registry"),
        "inst.pt": (b"(icollections\nOrderedDict\n.", "calls class collections.OrderedDict with arguments"),
        "text.pt": (b"hello", "malformed"),
        "empty.pt": (b"", "malformed"),
    }
    for name, (body, reason) in cases.items():
        with pytest.raises(UnsafeCheckpointError, match=reason):
            _check(raw(name, body))
    tar = tmp_path / "archive.pt"
    import tarfile

    with tarfile.open(tar, "w") as archive:
        archive.add(genuine_detect, arcname="pickle")
    with pytest.raises(UnsafeCheckpointError, match="is a tar archive"):
        _check(tar)
    # a genuine model with ModelOpt state: ultralytics would install and run ModelOpt to restore it
    ckpt = torch.load(genuine_detect, weights_only=False)
    torch.save({**ckpt, "modelopt": {"modelopt": {}}}, tmp_path / "qat.pt")
    with pytest.raises(UnsafeCheckpointError, match="ModelOpt quantization state"):
        _check(tmp_path / "qat.pt")
    torch.save({**ckpt, "model": {"not": "a model"}}, tmp_path / "nomodel.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"its pickle data\.pkl holds no model"):
        _check(tmp_path / "nomodel.pt")


def _legacy_file(tmp_path: Path, name: str, body: bytes) -> Path:
    """A legacy-format file whose object pickle is `body` (the other four pickles are plain data)."""
    path = tmp_path / name
    head = [pickle.dumps(0x1950A86A20F9469CFC6C, 2), pickle.dumps(1001, 2), pickle.dumps({}, 2)]
    path.write_bytes(b"".join(head) + body + pickle.dumps([], 2))
    return path


def test_an_allowlisted_class_is_only_ever_rebuilt_the_standard_way(tmp_path):
    conv = b"cultralytics.nn.modules.conv\nConv\n"
    cases = {
        # NEWOBJ with arguments, state set on the class itself, and one instance's state set twice
        "args": (b"\x80\x02" + conv + b"K\x03K\x10\x86\x81.", "creates class ultralytics.nn.modules.conv.Conv with"),
        "class_state": (b"\x80\x02" + conv + b"}X\x01\x00\x00\x00aK\x01sb.", "sets attributes of class ultra"),
        "twice": (b"\x80\x02" + conv + b")\x81}b}b.", "sets the state of one ultralytics.nn.modules.conv.Conv twice"),
        # a dotted attribute path would let module.qualname name another object than the one on the allowlist
        "dotted": (
            b"\x80\x04\x8c\x05torch\x8c\x19_utils._rebuild_tensor_v2\x93.",
            "names a global with an unusual name",
        ),
        "persid": (b"\x80\x02P0\n.", "has a text persistent id"),
    }
    for name, (body, reason) in cases.items():
        with pytest.raises(UnsafeCheckpointError, match=f"its object pickle {re.escape(reason)}"):
            _check(_legacy_file(tmp_path, f"{name}.pt", body))


def test_genuine_detect_and_pose_checkpoints_pass_load_and_predict(genuine_detect, genuine_pose, no_network):
    from PIL import Image

    from curation.models.yolo import PersonDetector, PoseEstimator
    from curation.sample_corpus.sources import photo_path

    photo = Image.open(photo_path("zidane")).convert("RGB")
    for path, cfg, runner in (
        (genuine_detect, tiny_profile().detector, PersonDetector),
        (genuine_pose, tiny_profile().pose, PoseEstimator),
    ):
        _check(path)
        cfg = dataclasses.replace(cfg, weights=str(path), conf=0.0)
        model = load_yolo(cfg, key=KEY)
        assert model.task == cfg.task and model.names == {0: "person"}
        assert "data" not in model.overrides  # the train_args path from the file is not kept
        (result,) = runner(cfg)([photo])
        assert len(result.conf) == cfg.max_det and result.boxes.shape == (cfg.max_det, 4)
        if cfg.task == "pose":
            assert result.keypoints.shape == (cfg.max_det, 17, 3)


def test_a_sha256_pin_is_checked_before_the_file_is_parsed(genuine_detect, tmp_path, marker, no_network):
    import hashlib

    digest = hashlib.sha256(genuine_detect.read_bytes()).hexdigest()
    cfg = dataclasses.replace(tiny_profile().detector, weights=str(genuine_detect), sha256=digest.upper())
    assert load_yolo(cfg, key=KEY).task == "detect"
    path, _ = _gadgets(tmp_path, marker)["exec"]
    with pytest.raises(UnsafeCheckpointError) as err:
        load_yolo(dataclasses.replace(cfg, weights=str(path), sha256=digest), key=KEY)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert str(err.value).startswith(
        f"{KEY}: {path}: refused: its sha256 is {actual}, not the pinned models.detector.sha256={digest};"
    )
    with pytest.raises(UsageError, match=r"models\.detector\.sha256=abc is not a sha256 \(64 hex digits\)"):
        load_yolo(dataclasses.replace(cfg, sha256="abc"), key=KEY)
    with pytest.raises(UsageError, match=r"models\.detector\.sha256 pins a weights file, but .*yolo11n\.yaml is a"):
        load_yolo(dataclasses.replace(tiny_profile().detector, sha256=digest), key=KEY)
    assert not marker.exists()


def test_the_loaded_bytes_are_the_checked_bytes(genuine_detect, tmp_path, marker, monkeypatch, no_network):
    """Swapping the file after the check changes nothing: ultralytics reads a private copy of the checked bytes."""
    import curation.models.yolo_file as yolo_file

    path = tmp_path / "yolo11n.pt"
    path.write_bytes(genuine_detect.read_bytes())
    hostile = _gadgets(tmp_path, marker)["exec"][0].read_bytes()
    check = yolo_file.check_checkpoint

    def check_then_swap(data, checked_path, **kwargs):
        check(data, checked_path, **kwargs)
        path.write_bytes(hostile)  # the attacker wins the race

    monkeypatch.setattr(yolo_file, "check_checkpoint", check_then_swap)
    model = load_yolo(dataclasses.replace(tiny_profile().detector, weights=str(path)), key=KEY)
    assert model.task == "detect" and path.read_bytes() == hostile and not marker.exists()
    copy = Path(model.ckpt_path)
    assert copy.name == "yolo11n.pt" and copy != path and not copy.exists()  # the private copy is gone


# --- the allowlist --------------------------------------------------------------------------------------------


def _allowed_classes() -> dict[str, type]:
    classes = {}
    for name, uses in allowlist().items():
        if NEW in uses:
            module, _, attr = name.rpartition(".")
            classes[name] = getattr(importlib.import_module(module), attr)
    return classes


def test_allowlisted_classes_rebuild_through_nn_module_only():
    """NEWOBJ runs cls.__new__(cls) and BUILD runs __setstate__. For every allowlisted class __new__ is object's and
    __setstate__ is nn.Module's (a __dict__ update) or one of the reviewed overrides below, so rebuilding one cannot
    reach I/O. Legacy files also check module sources, writing a patch file only when dump_patches is on."""
    reviewed_setstate = {
        "torch.nn.modules.conv._ConvNd",  # defaults padding_mode for old checkpoints
        "torch.nn.modules.upsampling.Upsample",  # defaults recompute_scale_factor
        "ultralytics.nn.modules.block.AAttn",  # defaults all_head_dim = head_dim * num_heads
    }
    classes = _allowed_classes()
    assert len(classes) > 30
    overriding = set()
    for name, cls in classes.items():
        assert issubclass(cls, nn.Module) and type(cls) is type, name  # no metaclass hooking instance creation
        assert cls.__new__ is object.__new__, name
        assert cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__, name
        assert cls.__getattr__ is nn.Module.__getattr__ and cls.__setattr__ is nn.Module.__setattr__, name
        assert cls.dump_patches is False, name
        overriding |= {f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__[:-2] if "__setstate__" in vars(c)}
    assert overriding == reviewed_setstate  # a new override must be read before it is allowed


def test_allowlisted_calls_are_the_reviewed_constructors_and_rebuild_helpers():
    """REDUCE calls these with arguments from the file; each is reviewed to build data without I/O."""
    reviewed = {
        "builtins.set",
        "collections.OrderedDict",
        "torch.Size",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_tensor_v2",
    }
    calls = {name for name, uses in allowlist().items() if CALL in uses or FILL in uses}
    assert calls <= reviewed, f"review before allowing: {sorted(calls - reviewed)}"
    values = {name for name, uses in allowlist().items() if VALUE in uses}
    assert values <= {f"torch.{t}Storage" for t in ("Float", "Half", "Long", "Int", "Double", "Bool", "BFloat16")}
    roots = {name for name, uses in allowlist().items() if ROOT in uses}
    assert roots == {"ultralytics.nn.tasks.DetectionModel", "ultralytics.nn.tasks.PoseModel"}


def test_no_allowlisted_name_is_renamed_at_load():
    """The check compares the name written in the file; pickle (Python 2 names), torch and ultralytics rename a few
    names at load, and none of those may be on the allowlist, or the object loaded would differ from the one named."""
    from ultralytics.nn import tasks

    renamed = {f"{m}.{n}" for m, n in _compat_pickle.NAME_MAPPING} | set(_compat_pickle.IMPORT_MAPPING)
    ultralytics_renamed = {
        "ultralytics.nn.modules.block.Silence",
        "ultralytics.nn.tasks.YOLOv10DetectionModel",
        "ultralytics.utils.loss.v10DetectLoss",
        "pathlib.WindowsPath",
    }
    source = Path(tasks.__file__).read_text()
    assert all(name in source for name in ultralytics_renamed)  # still the renames torch_safe_load applies
    for name in allowlist():
        module = name.rpartition(".")[0]
        assert name not in renamed and module not in renamed and not module.startswith("torch.tensor"), name
        assert not module.startswith("ultralytics.yolo") and name not in ultralytics_renamed, name
    assert builtins.set.__module__ == "builtins"


def test_allowlist_is_what_genuine_checkpoints_of_the_installed_ultralytics_hold(tmp_path):
    """Rebuilt from scratch and compared, so an ultralytics upgrade that needs another class fails here with its
    name. The n scale of every family and task is trained as a release; the larger scales are written like one
    (like_release) to keep this within minutes. yolo_allowlist.json itself comes from training every scale."""
    rebuilt = tmp_path / "rebuilt.json"
    command = ["-m", "curation.models.yolo_genuine", "allowlist", "--trained-scales", "n", "--out", str(rebuilt)]
    subprocess.run([sys.executable, *command], check=True, env={**os.environ}, capture_output=True, timeout=1800)
    rebuilt, committed = json.loads(rebuilt.read_text()), json.loads(ALLOWLIST_PATH.read_text())
    missing = {
        name: sorted(set(uses) - set(committed["globals"].get(name, [])))
        for name, uses in rebuilt["globals"].items()
        if set(uses) - set(committed["globals"].get(name, []))
    }
    assert not missing, f"add to yolo_allowlist.json (python -m curation.models.yolo_genuine allowlist): {missing}"
    assert rebuilt["globals"] == committed["globals"]
    assert rebuilt["yaml"] == committed["yaml"]
    assert sorted(rebuilt["checkpoints"]) == sorted(committed["checkpoints"])
    assert sorted(committed["checkpoints"]) == sorted(name for name, _ in model_yamls(FAMILIES, SCALES))


def test_yaml_vocabulary_lists_what_a_model_yaml_names():
    vocab = yaml_vocabulary({"nc": 1, "backbone": [[-1, 1, "Conv", [64, 3, 2]]], "head": [[-1, 1, "X", ["nc"]]]})
    assert vocab == {
        "keys": {"nc", "backbone", "head"},
        "modules": {"Conv", "X"},
        "strings": {"nc"},
        "activations": set(),
    }
