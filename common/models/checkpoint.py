"""Backbone weights as safetensors files (no pickle): save, and load with a clear report of any mismatch.

A checkpoint that is missing, unreadable or does not fit the model is the caller's choice of file: each raises a
UsageError subclass naming the file, so the command reports it as one line.
"""

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from common.errors import UsageError
from common.models.sizes import SIZES

_SHOWN_KEYS = 5  # how many offending keys an error lists per kind


class CheckpointNotFoundError(UsageError, FileNotFoundError):
    """A checkpoint path that does not exist."""


class CheckpointMismatchError(UsageError, ValueError):
    """The checkpoint's tensors do not fit the model (missing / unexpected keys, or shapes)."""


class UnreadableCheckpointError(UsageError, ValueError):
    """A file that is not a readable safetensors file: truncated, corrupt, or of another format."""


@contextmanager
def reading_checkpoint(path: str | Path) -> Iterator[None]:
    """Turn safetensors' parse errors while reading `path` into UnreadableCheckpointError naming the file."""
    try:
        yield
    except SafetensorError as err:
        raise UnreadableCheckpointError(
            f"{path} is not a readable safetensors file ({err}): it is truncated, corrupt or of another format; "
            "save it again or pass another checkpoint"
        ) from err


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; UnreadableCheckpointError when it cannot be parsed."""
    with reading_checkpoint(path):
        return load_file(str(path))


class LoadResult(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


def save_backbone(model: nn.Module, path: str | Path) -> None:
    """Write the model's state dict to `path` as safetensors."""
    # safetensors stores contiguous, unshared tensors; detach + contiguous copies only where it has to.
    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def load_backbone(
    model: nn.Module, path: str | Path, strict: bool = True, *, size_key: str | None = None
) -> LoadResult:
    """Load safetensors weights from `path` into `model` in place.

    A shape mismatch always raises `CheckpointMismatchError`; missing or unexpected keys raise it when `strict`,
    else they are returned. The error names the file and the first offending keys of each kind (`size_key`: see
    check_state).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"backbone checkpoint {path} does not exist; pass the .safetensors file to load")
    state = read_safetensors(path)
    missing, unexpected = check_state(state, model.state_dict(), path, type(model).__name__, strict, size_key=size_key)
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    return LoadResult(missing, unexpected)


def check_state(
    state: Mapping[str, Any],
    expected: Mapping[str, Any],
    path: Path,
    model_name: str,
    strict: bool = True,
    *,
    size_key: str | None = None,
) -> tuple[list[str], list[str]]:
    """Raise `CheckpointMismatchError` naming `path` and the first offending keys when `state` does not fit
    `expected` (shape mismatches always; missing or unexpected keys when `strict`); else (missing, unexpected).

    When both hold a backbone of different widths or depths, the error names the size each looks like, and with
    `size_key` (the config key of the model's size, e.g. backbone.name) the value to set.
    """
    missing, unexpected, shapes = state_differences(state, expected)
    problems = [("shape mismatches", shapes)]
    if strict:
        problems += [("missing keys", missing), ("unexpected keys", unexpected)]
    found = [(kind, items) for kind, items in problems if items]
    if found:
        details = "; ".join(f"{len(items)} {kind}: {_first(items)}" for kind, items in found)
        built, saved = backbone_shape(expected), backbone_shape(state)
        if built is not None and saved is not None and built != saved:
            file_size = size_name(saved)
            fix = (
                f"set {size_key}={file_size}"
                if size_key and file_size
                else "build the model with the size the checkpoint was saved from"
            )
            raise CheckpointMismatchError(
                f"{path} does not fit {model_name}: the model was built as {_describe(built)}, the file looks like "
                f"{_describe(saved)}: {fix} ({details})"
            )
        raise CheckpointMismatchError(
            f"{path} does not fit {model_name}: {details}. Build the model with the size the checkpoint was "
            "saved from" + ("" if shapes else ", or load with strict=False to skip keys the model does not share")
        )
    return missing, unexpected


def backbone_shape(state: Mapping[str, Any]) -> tuple[int, int] | None:
    """(width, blocks) of the one Sapiens2 backbone in a state dict (its [CLS] token's size, its block indices),
    under whatever prefix it sits (`backbone.` in a task model); None when there is not exactly one."""
    cls = [key for key in state if key == "cls_token" or key.endswith(".cls_token")]
    if len(cls) != 1:
        return None
    blocks = re.compile(re.escape(cls[0].removesuffix("cls_token")) + r"blocks\.(\d+)\.")
    depth = len({match.group(1) for key in state if (match := blocks.match(key))})
    return int(state[cls[0]].shape[-1]), depth


def size_name(shape: tuple[int, int]) -> str | None:
    """The size of common.models.sizes.SIZES with this (width, blocks), if any."""
    return next((name for name, size in SIZES.items() if (size.dim, size.depth) == shape), None)


def _describe(shape: tuple[int, int]) -> str:
    name = size_name(shape)
    return (f"size {name} " if name else "") + f"(width {shape[0]}, {shape[1]} blocks)"


def state_differences(state: Mapping[str, Any], expected: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, shape mismatches as text) of `state` against `expected` (values with .shape)."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key}: checkpoint {list(state[key].shape)}, expected {list(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    return missing, unexpected, shapes


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS])
    return shown + (f", … ({len(items) - _SHOWN_KEYS} more)" if len(items) > _SHOWN_KEYS else "")
