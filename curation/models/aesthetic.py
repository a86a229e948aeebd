"""The LAION improved-aesthetic-predictor: an MLP on L2-normalised CLIP ViT-L/14 embeddings, score ≈ 1-10.

The layout is the published one (christophschuhmann/improved-aesthetic-predictor, `MLP.layers`): linear layers with
dropout and no activations, so `sac+logos+ava1-l14-linearMSE.pth` loads as it is, keys `layers.{0,2,4,6,7}.*`.
"""

import torch
from torch import nn

from curation.models.mlp_weights import EmbeddingScorer, load_scoring_mlp
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


def load_aesthetic(cfg: AestheticConfig, *, key: str = "models.aesthetic.weights") -> EmbeddingScorer:
    problem = aesthetic_weights_problem(cfg, key)
    if problem is not None:
        raise FileNotFoundError(problem)
    mlp = load_scoring_mlp(AestheticMLP, cfg, key, "an improved-aesthetic-predictor")
    return EmbeddingScorer(mlp, resolve_device(cfg.device))
