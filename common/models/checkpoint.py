"""Backbone weights as safetensors files (no pickle): save, and load with a clear report of any mismatch."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn

_SHOWN_KEYS = 5  # how many offending keys an error lists per kind


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not fit the model (missing / unexpected keys, or shapes)."""


class LoadResult(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


def save_backbone(model: nn.Module, path: str | Path) -> None:
    """Write the model's state dict to `path` as safetensors."""
    # safetensors stores contiguous, unshared tensors; detach + contiguous copies only where it has to.
    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def load_backbone(model: nn.Module, path: str | Path, strict: bool = True) -> LoadResult:
    """Load safetensors weights from `path` into `model` in place.

    A shape mismatch always raises `CheckpointMismatchError`; missing or unexpected keys raise it when `strict`,
    else they are returned. The error names the file and the first offending keys of each kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint {path} does not exist; pass the .safetensors file to load")
    state = load_file(str(path))
    missing, unexpected = check_state(state, model.state_dict(), path, type(model).__name__, strict)
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    return LoadResult(missing, unexpected)


def check_state(
    state: Mapping[str, Any], expected: Mapping[str, Any], path: Path, model_name: str, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Raise `CheckpointMismatchError` naming `path` and the first offending keys when `state` does not fit
    `expected` (shape mismatches always; missing or unexpected keys when `strict`); else (missing, unexpected)."""
    missing, unexpected, shapes = state_differences(state, expected)
    problems = [("shape mismatches", shapes)]
    if strict:
        problems += [("missing keys", missing), ("unexpected keys", unexpected)]
    found = [(kind, items) for kind, items in problems if items]
    if found:
        details = "; ".join(f"{len(items)} {kind}: {_first(items)}" for kind, items in found)
        raise CheckpointMismatchError(
            f"{path} does not fit {model_name}: {details}. Build the model with the size the checkpoint was "
            "saved from" + ("" if shapes else ", or load with strict=False to skip keys the model does not share")
        )
    return missing, unexpected


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
