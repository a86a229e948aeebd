"""The pickle-free YOLO format: a model's tensors as safetensors, with what rebuilds the model as metadata.

`humans1b models convert-yolo IN.pt OUT.safetensors` loads a `.pt` once through the pickle check and writes its state
dict plus: the model yaml dict (JSON), the task, the class names, kpt_shape, and the source file's sha256. Loading
such a file unpickles nothing: the metadata is JSON, the yaml is checked against the vocabulary of genuine
checkpoints (layer modules, string arguments, keys: yolo_allowlist.json) before ultralytics builds the model from
it, and the tensors are read by safetensors.
"""

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import UsageError
from curation.models.pickle_guard import ALLOWLIST_PATH, UnsafeCheckpointError

if TYPE_CHECKING:
    from ultralytics import YOLO

log = logging.getLogger(__name__)

FORMAT = "humans1b-yolo/1"
TASKS = ("detect", "pose")
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own bound on the JSON header
_SCALE = re.compile(r"[nslmx]?")  # what ultralytics' guess_model_scale can return
# What parse_model and the first forward raise on a checked yaml whose layers do not fit together.
_BUILD_ERRORS = (IndexError, KeyError, TypeError, ValueError, RuntimeError, ZeroDivisionError, AttributeError)


class ConvertedYoloError(UnsafeCheckpointError):
    """A .safetensors YOLO file that cannot be built; the message names the file, the problem and what to do."""


def _error(path: Path, reason: str, key: str | None) -> ConvertedYoloError:
    return ConvertedYoloError(
        f"{f'{key}: ' if key else ''}{path}: refused: {reason}; nothing was built from it. "
        "Convert the ultralytics .pt again with `humans1b models convert-yolo IN.pt OUT.safetensors`"
    )


@dataclass(frozen=True)
class YoloMetadata:
    task: str
    model_yaml: dict[str, Any]
    names: dict[int, str]
    kpt_shape: list[int] | None
    source_sha256: str


@cache
def yaml_vocabulary() -> dict[str, frozenset[str]]:
    """keys / modules / strings / activations that genuine model yamls use (yolo_allowlist.json)."""
    return {part: frozenset(values) for part, values in json.loads(ALLOWLIST_PATH.read_text())["yaml"].items()}


# --- reading and checking ---------------------------------------------------------------------------------------


def read_metadata(data: bytes, path: Path, *, key: str | None = None) -> YoloMetadata:
    """The checked metadata of a converted file; raises ConvertedYoloError naming `path` (and `key`)."""
    try:
        return _metadata(_header(data))
    except ValueError as err:
        raise _error(path, str(err), key) from None


def _header(data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise ValueError("it is not a safetensors file (shorter than its 8-byte header length)")
    size = int.from_bytes(data[:8], "little")
    if size > min(_HEADER_LIMIT, len(data) - 8):
        raise ValueError("it is not a safetensors file (bad header length)")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("it is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError("it is not a safetensors file (its header is not a JSON object)")
    return header


def _metadata(header: dict[str, Any]) -> YoloMetadata:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"it has no {FORMAT} metadata (it was not written by `humans1b models convert-yolo`)")
    task = meta.get("task")
    if task not in TASKS:
        raise ValueError(f"its task {task!r} is not one of {', '.join(TASKS)}")
    model_yaml = _json_field(meta, "yaml")
    check_model_yaml(model_yaml)
    names = _json_field(meta, "names")
    if not (isinstance(names, dict) and names and all(k.isdigit() and isinstance(v, str) for k, v in names.items())):
        raise ValueError("its class names are not a JSON object of index -> name")
    if len(names) != model_yaml["nc"]:
        raise ValueError(f"it names {len(names)} classes, its model yaml has nc={model_yaml['nc']}")
    kpt_shape = _json_field(meta, "kpt_shape")
    if kpt_shape != model_yaml.get("kpt_shape") or (task == "pose") != (kpt_shape is not None):
        raise ValueError(f"its kpt_shape {kpt_shape} does not match its {task} model yaml")
    source = meta.get("source_sha256", "")
    if not re.fullmatch(r"[0-9a-f]{64}", source):
        raise ValueError("its source_sha256 is not a sha256")
    return YoloMetadata(task, model_yaml, {int(k): v for k, v in names.items()}, kpt_shape, source)


def _json_field(meta: dict[str, Any], name: str) -> Any:
    try:
        return json.loads(meta.get(name, ""))
    except (TypeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"its metadata field {name!r} is missing or not JSON") from None


def check_model_yaml(model_yaml: Any) -> None:
    """Raise ValueError unless `model_yaml` is a model dict ultralytics can build without running anything but the
    constructors of genuine layer classes with literal arguments (parse_model looks module names up in its globals
    and evals `activation`, so both are held to what genuine yamls contain)."""
    vocab = yaml_vocabulary()
    if not isinstance(model_yaml, dict):
        raise ValueError("its model yaml is not a JSON object")
    unknown = sorted(set(model_yaml) - vocab["keys"])
    if unknown:
        raise ValueError(f"its model yaml has the key {unknown[0]!r}, which no genuine model yaml has")
    layer = 0  # parse_model numbers backbone and head rows as one list
    for part in ("backbone", "head"):
        rows = model_yaml.get(part)
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"its model yaml has no {part} list")
        for i, row in enumerate(rows):
            _check_row(row, f"{part}[{i}]", layer, vocab)
            layer += 1
    if not (_is_int(model_yaml.get("nc")) and model_yaml["nc"] >= 1):
        raise ValueError("its model yaml has no class count nc >= 1")
    scales, scale = model_yaml.get("scales", {}), model_yaml.get("scale", "")
    if not (isinstance(scales, dict) and all(_is_numbers(v, 3) for v in scales.values())):
        raise ValueError("its model yaml's scales are not lists of [depth, width, max_channels]")
    if not (isinstance(scale, str) and _SCALE.fullmatch(scale) and (not scale or scale in scales)):
        raise ValueError(f"its model yaml's scale {scale!r} is not one of its scales")
    if "activation" in model_yaml and model_yaml["activation"] not in vocab["activations"]:
        raise ValueError(f"its model yaml's activation {model_yaml['activation']!r} is not one genuine yamls use")
    if "kpt_shape" in model_yaml and not (_is_numbers(model_yaml["kpt_shape"], 2, ints=True)):
        raise ValueError("its model yaml's kpt_shape is not [keypoints, dims]")
    for name in ("channels", "reg_max"):
        if name in model_yaml and not (_is_int(model_yaml[name]) and model_yaml[name] >= 1):
            raise ValueError(f"its model yaml's {name} is not a positive integer")
    for name, value in model_yaml.items():
        if name not in ("backbone", "head") and not _is_literal(value):
            raise ValueError(f"its model yaml's {name} is not a plain value")


def _check_row(row: Any, where: str, layer: int, vocab: dict[str, frozenset[str]]) -> None:
    if not (isinstance(row, list) and len(row) == 4):
        raise ValueError(f"its model yaml's {where} is not [from, repeats, module, args]")
    source, repeats, module, args = row
    sources = source if isinstance(source, list) and source else [source]
    if not all(_is_int(s) and (s == -1 or 0 <= s < layer) for s in sources):
        raise ValueError(f"its model yaml's {where} 'from' is not -1 or earlier layers")
    if not (_is_int(repeats) and repeats >= 1):
        raise ValueError(f"its model yaml's {where} repeats is not a positive integer")
    if module not in vocab["modules"]:
        raise ValueError(f"its model yaml's {where} names the module {module!r}, which no genuine model yaml uses")
    if not isinstance(args, list):
        raise ValueError(f"its model yaml's {where} arguments are not a list")
    for arg in args:
        if isinstance(arg, str) and arg not in vocab["strings"]:
            raise ValueError(f"its model yaml's {where} has the argument {arg!r}, which no genuine model yaml uses")
        if not isinstance(arg, str) and not _is_literal(arg, strings=False):
            raise ValueError(f"its model yaml's {where} has an argument that is not a number, bool or list of them")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_numbers(value: Any, length: int, *, ints: bool = False) -> bool:
    kinds = (int,) if ints else (int, float)
    return (
        isinstance(value, list)
        and len(value) == length
        and all(isinstance(v, kinds) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def _is_literal(value: Any, *, strings: bool = True, depth: int = 0) -> bool:
    """JSON scalars and lists / objects of them (strings only when `strings`), nested at most 8 deep."""
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return strings
    if depth >= 8:
        return False
    if isinstance(value, list):
        return all(_is_literal(v, strings=strings, depth=depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v, strings=strings, depth=depth + 1) for k, v in value.items())
    return False


# --- building -----------------------------------------------------------------------------------------------------


def build_yolo(data: bytes, path: Path, *, key: str | None = None) -> "YOLO":
    """The ultralytics model of converted bytes (`read_metadata` has passed): built from the checked yaml, the state
    dict loaded with safetensors, the class names set. No pickle is read."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors
    from ultralytics import YOLO
    from ultralytics.nn.tasks import guess_model_scale

    from curation.models.yolo_file import private_copy

    meta = read_metadata(data, path, key=key)
    model_yaml = dict(meta.model_yaml)
    scale = model_yaml.get("scale", "")
    # ultralytics takes the scale from the yaml file's name (guess_model_scale), so the name must carry it
    name = f"converted-yolo0{scale}.yaml" if scale else "converted.yaml"
    if guess_model_scale(name) != scale:
        raise RuntimeError(f"ultralytics reads the scale of {name} as {guess_model_scale(name)!r}, not {scale!r}")
    try:
        tensors = load_tensors(data)
    except SafetensorError as err:
        raise _error(path, f"its tensors cannot be read ({err})", key) from None
    try:
        with private_copy(json.dumps(model_yaml).encode(), name) as yaml_path, torch.random.fork_rng(devices=[]):
            model = YOLO(str(yaml_path), task=meta.task, verbose=False)  # YAML is a superset of JSON
    except _BUILD_ERRORS as err:  # genuine words in an order ultralytics cannot build (layer sizes, arguments)
        reason = (
            f"its model yaml does not build ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else err!r})"
        )
        raise _error(path, reason, key) from None
    model.model.yaml["yaml_file"] = meta.model_yaml.get("yaml_file", model.model.yaml.get("yaml_file"))
    try:
        model.model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        reason = f"its tensors do not fit the model its yaml describes ({str(err).splitlines()[0]})"
        raise _error(path, reason, key) from None
    model.model.names = dict(meta.names)
    model.model.float().eval()
    model.overrides["model"] = str(path)
    return model


# --- converting ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    path: Path
    task: str
    tensors: int
    sha256: str  # of the written file: the value to pin
    source_sha256: str


def convert_yolo(source: Path, target: Path, *, sha256: str | None = None) -> Converted:
    """Write `source` (.pt, checked, optionally pinned) as a converted .safetensors at `target`."""
    import torch
    from safetensors.torch import save as save_tensors

    from curation.models.yolo_file import PT_SUFFIX, SAFETENSORS_SUFFIX, load_checked_pt, read_yolo_weights

    if source.suffix != PT_SUFFIX or target.suffix != SAFETENSORS_SUFFIX:
        raise UsageError(f"convert-yolo reads a .pt and writes a .safetensors; got {source} -> {target}")
    if not source.is_file():
        raise UsageError(f"{source} does not exist; give the path of an ultralytics .pt checkpoint")
    data = read_yolo_weights(source, sha256=sha256)
    model = load_checked_pt(data, source)
    if model.task not in TASKS:
        raise UsageError(f"{source} is a {model.task!r} model; convert-yolo converts {' and '.join(TASKS)} models")
    inner = model.model
    kpt_shape = list(inner.kpt_shape) if model.task == "pose" else None
    metadata = {
        "format": FORMAT,
        "task": model.task,
        "yaml": json.dumps(inner.yaml),
        "names": json.dumps({str(k): str(v) for k, v in inner.names.items()}),
        "kpt_shape": json.dumps(kpt_shape),
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "source": source.name,
    }
    try:
        meta = _metadata({"__metadata__": metadata})  # what a load will check, checked now
    except ValueError as err:
        raise UsageError(f"{source} cannot be converted: {err}") from None
    tensors = {}
    for name, tensor in inner.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().clone()
        if tensor.is_floating_point() and torch.equal(tensor.half().float(), tensor.float()):
            tensor = tensor.half()  # a release's fp16 values, kept exactly at half the size
        tensors[name] = tensor
    blob = save_tensors(tensors, metadata=metadata)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(blob)
    os.replace(partial, target)
    log.info("converted %s (%s) to %s", source, meta.task, target)
    return Converted(target, meta.task, len(tensors), hashlib.sha256(blob).hexdigest(), meta.source_sha256)
