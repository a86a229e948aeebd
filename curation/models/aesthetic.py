"""The LAION improved-aesthetic-predictor: an MLP on L2-normalised CLIP ViT-L/14 embeddings, score ≈ 1-10.

The layout is the published one (christophschuhmann/improved-aesthetic-predictor, `MLP.layers`): linear layers with
dropout and no activations, so `sac+logos+ava1-l14-linearMSE.pth` loads as it is, keys `layers.{0,2,4,6,7}.*`.
"""

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from curation.models.registry import AestheticConfig, aesthetic_weights_problem, resolve_device

log = logging.getLogger(__name__)


class AestheticMLP(nn.Module):
    def __init__(self, input_dim: int = 768) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.layers = nn.Sequential(
            nn.Linear(input_dim, 1024),  # layers.0
            nn.Dropout(0.2),
            nn.Linear(1024, 128),  # layers.2
            nn.Dropout(0.2),
            nn.Linear(128, 64),  # layers.4
            nn.Dropout(0.1),
            nn.Linear(64, 16),  # layers.6
            nn.Linear(16, 1),  # layers.7
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # [N, D] -> [N, 1]


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


def check_layout(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError naming every missing, unexpected or mis-shaped key: load_state_dict's own message does not
    say which file or which setting is wrong."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: {got[k]} (expected {expected[k]})" for k in sorted(set(got) & set(expected)) if got[k] != expected[k]
    ]
    if missing or unexpected or shapes:
        problems = [
            *([f"missing keys {missing}"] if missing else []),
            *([f"unexpected keys {unexpected}"] if unexpected else []),
            *([f"wrong shapes {'; '.join(shapes)}"] if shapes else []),
        ]
        raise ValueError(
            f"{source} is not an improved-aesthetic-predictor state dict for input size {model.input_dim}: "
            f"{', '.join(problems)}. Expected {expected}; the input size is models.aesthetic.input_dim"
        )


class AestheticPredictor:
    def __init__(self, mlp: AestheticMLP, device: str = "cpu") -> None:
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


def load_aesthetic(cfg: AestheticConfig, *, key: str = "models.aesthetic.weights") -> AestheticPredictor:
    problem = aesthetic_weights_problem(cfg, key)
    if problem is not None:
        raise FileNotFoundError(problem)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        mlp = AestheticMLP(cfg.input_dim)
    if cfg.weights is None:
        log.warning("%s: aesthetic MLP has random weights (seed %d)", key, cfg.seed)
    else:
        state = read_state_dict(cfg.weights)
        check_layout(mlp, state, f"{key}={cfg.weights}")
        mlp.load_state_dict(state)
    return AestheticPredictor(mlp, resolve_device(cfg.device))
