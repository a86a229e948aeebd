"""Weights of the small scoring heads on CLIP embeddings (aesthetic, NSFW, linear probes): read safely, checked
against the model's layout with the file and the setting named, or a seeded random init for the tiny profile."""

import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a torch.save file loaded with weights_only=True."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as err:
        raise ValueError(f"{path} is not a torch state dict readable with weights_only=True: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return state


def check_layout(model: nn.Module, state: dict[str, torch.Tensor], source: str, what: str, setting: str) -> None:
    """Raise a ValueError naming every missing, unexpected or mis-shaped key: load_state_dict's own message does not
    say which file or which setting is wrong. `what`: the kind of file expected; `setting`: the input size's key."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    problems = [
        *(f"missing {k}" for k in sorted(set(expected) - set(got))),
        *(f"unexpected {k}" for k in sorted(set(got) - set(expected))),
        *(f"{k}: {got[k]} (expected {expected[k]})" for k in sorted(set(got) & set(expected)) if got[k] != expected[k]),
    ]
    if problems:
        raise ValueError(
            f"{source} is not {what} state dict for input size {model.input_dim}: {'; '.join(problems)}. "
            f"Expected {expected}; the input size is {setting}"
        )


def load_scoring_mlp(factory: Callable[[int], nn.Module], cfg: Any, key: str, what: str) -> nn.Module:
    """`factory(cfg.input_dim)` with the weights at `cfg.weights` (`key` names that setting), or random weights
    drawn from `cfg.seed` without touching the global RNG when `cfg.weights` is None."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        mlp = factory(cfg.input_dim)
    if cfg.weights is None:
        log.warning("%s: %s head has random weights (seed %d)", key, what, cfg.seed)
        return mlp
    state = read_state_dict(cfg.weights)
    check_layout(mlp, state, f"{key}={cfg.weights}", what, key.rsplit(".", 1)[0] + ".input_dim")
    mlp.load_state_dict(state)
    return mlp


class EmbeddingScorer:
    """A scoring head run on CLIP embeddings: [N, D] float16/32 → [N] float32 scores."""

    def __init__(self, mlp: nn.Module, device: str = "cpu") -> None:
        # float64: the MLP is tiny, and this makes a row's score independent of the batch it arrives in (float32
        # matmuls round differently by batch size, which would break byte-identical re-runs after a resume).
        self.mlp = mlp.to(device=device, dtype=torch.float64).eval()
        self.device = device

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """[N] float32 scores for [N, D] CLIP image embeddings (re-normalised here: stored ones are float16)."""
        x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float64, device=self.device)
        if x.ndim != 2 or x.shape[1] != self.mlp.input_dim:
            raise ValueError(f"expected embeddings [N, {self.mlp.input_dim}], got {list(x.shape)}")
        with torch.inference_mode():
            return self.mlp(nn.functional.normalize(x, dim=-1))[:, 0].float().cpu().numpy()
