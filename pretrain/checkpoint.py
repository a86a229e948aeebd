"""Training checkpoints: weights as safetensors, optimizer + RNG + loader state loaded with weights_only=True.

`checkpoints/step_XXXXXXXX/` is written under a temporary name and renamed when complete, then `latest` is
rewritten to name it, so a kill at any point leaves the previous checkpoint usable.
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.models import load_backbone, save_backbone

CHECKPOINTS = "checkpoints"
LATEST = "latest"


def save_checkpoint(out: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, extra: dict) -> Path:
    """extra: JSON-able training state (step counters, loader position)."""
    root = Path(out) / CHECKPOINTS
    final = root / f"step_{step:08d}"
    tmp = root / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_backbone(model, tmp / "model.safetensors")  # the whole pretrainer: student, teacher, decoder, heads
    torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **extra}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = root / (LATEST + ".partial")
    pointer.write_text(final.name + "\n")
    os.replace(pointer, root / LATEST)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    pointer = Path(out) / CHECKPOINTS / LATEST
    return pointer.parent / pointer.read_text().strip() if pointer.exists() else None


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restores model, optimizer and torch RNG in place; returns the JSON state."""
    load_backbone(model, path / "model.safetensors", strict=True)
    saved = torch.load(path / "optimizer.pt", weights_only=True)  # untrusted files never unpickle code
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    return json.loads((path / "state.json").read_text())
