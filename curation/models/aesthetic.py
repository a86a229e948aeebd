"""The LAION improved-aesthetic-predictor: an MLP on L2-normalised CLIP ViT-L/14 embeddings, score ≈ 1-10.

The layout is the published one (christophschuhmann/improved-aesthetic-predictor, `MLP.layers`): linear layers with
dropout and no activations, so `sac+logos+ava1-l14-linearMSE.pth` loads as it is, keys `layers.{0,2,4,6,7}.*`.
"""

import numpy as np
import torch
from torch import nn

from curation.models.mlp_weights import load_scoring_mlp
from curation.models.registry import AestheticConfig, aesthetic_weights_problem, resolve_device


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
    mlp = load_scoring_mlp(AestheticMLP, cfg, key, "an improved-aesthetic-predictor")
    return AestheticPredictor(mlp, resolve_device(cfg.device))
