"""Training checkpoints: weights as safetensors, optimizer + per-rank RNG loaded with weights_only=True, JSON state.

`checkpoints/step_XXXXXXXX/` is written under a temporary name and renamed when complete, then `latest` is
rewritten to name it, so a kill at any point leaves the previous checkpoint usable.

The same files for one process, DDP and FSDP2: weights and optimizer state are gathered whole (keys are the
unwrapped module's names) through `torch.distributed.checkpoint.state_dict`, and rank 0 writes them. Saving is a
collective: every rank calls `save_checkpoint`. Per-rank state (RNG, loader position) is kept for every rank, so a
run resumed with the same world size continues exactly; each rank restores its own entry.
"""

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from common.models.checkpoint import check_state, read_safetensors
from common.training.distributed import DistInfo, barrier, gather_objects

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "latest"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.pt"
STATE = "state.json"
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def save_checkpoint(
    out: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict,
    rank_state: dict,
    info: DistInfo,
) -> Path:
    """extra: JSON-able run state (counters, config); rank_state: this rank's JSON-able state ({"data": the batch
    source's position} for `resume_latest`).
    Returns the checkpoint directory (written by rank 0; every rank returns after it is complete)."""
    model_state = get_model_state_dict(model, options=_FULL)
    optim_state = get_optimizer_state_dict(model, optimizer, options=_FULL)
    rngs = gather_objects(_rng_state())
    ranks = gather_objects(rank_state)
    root = Path(out) / CHECKPOINTS
    final = root / f"step_{step:08d}"
    if info.is_main:
        tmp = root / f".{final.name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # safetensors stores contiguous, unshared tensors (teacher and student start as copies)
        save_file({k: v.detach().contiguous() for k, v in model_state.items()}, str(tmp / WEIGHTS))
        torch.save({"optimizer": optim_state, "rng": rngs}, tmp / OPTIMIZER)
        state = {"step": step, "world_size": info.world_size, **extra, "ranks": ranks}
        (tmp / STATE).write_text(json.dumps(state, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        pointer = root / (LATEST + ".partial")
        pointer.write_text(final.name + "\n")
        os.replace(pointer, root / LATEST)
    barrier()
    return final


def latest_checkpoint(out: Path) -> Path | None:
    pointer = Path(out) / CHECKPOINTS / LATEST
    return pointer.parent / pointer.read_text().strip() if pointer.exists() else None


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, info: DistInfo) -> dict[str, Any]:
    """Restore model, optimizer and this rank's RNG in place; returns the JSON state with this rank's entry of
    "ranks" as "rank_state". Every rank reads the files (a shared filesystem, as for the output)."""
    path = Path(path)
    state = json.loads((path / STATE).read_text())
    saved_world = state.get("world_size", 1)
    if saved_world != info.world_size:
        raise ValueError(
            f"{path} was written by {saved_world} processes but this run has {info.world_size}: resume with "
            f"{saved_world} processes (the data order and RNG streams are per rank)"
        )
    weights = read_safetensors(path / WEIGHTS)  # a truncated file: one error naming it
    check_state(weights, get_model_state_dict(model), path / WEIGHTS, type(model).__name__, strict=True)
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))
    saved = torch.load(path / OPTIMIZER, weights_only=True)  # untrusted files never unpickle code
    set_optimizer_state_dict(model, optimizer, saved["optimizer"], options=StateDictOptions(full_state_dict=True))
    _set_rng_state(saved["rng"][info.rank])
    state["rank_state"] = state["ranks"][info.rank]
    return state


def resume_latest(
    out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, data: Any, info: DistInfo
) -> tuple[int, int]:
    """Restore the latest checkpoint in `out` into model, optimizer, RNG and `data` (a batch source with
    `load_state_dict`, saved as this rank's "data" by `save_checkpoint`); returns (step, skipped non-finite steps),
    (0, 0) when `out` holds none."""
    checkpoint = latest_checkpoint(out)
    if checkpoint is None:
        log.info("no checkpoint in %s: starting from step 0", out)
        return 0, 0
    state = load_checkpoint(checkpoint, model, optimizer, info)
    data.load_state_dict(state["rank_state"]["data"])
    log.info("resumed from %s at step %d", checkpoint, state["step"])
    return state["step"], state.get("skipped_nonfinite", 0)


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
