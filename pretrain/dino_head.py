"""DINO projection head on the [CLS] token: MLP -> L2-normalised bottleneck -> cosine scores against K prototypes."""

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DINOHead(nn.Module):
    """[B, in_dim] -> prototype scores [B, K], each a cosine similarity in [-1, 1].

    MLP: in_dim -> hidden_dim (-> hidden_dim ...) -> bottleneck_dim with GELU between layers; num_layers counts the
    linear layers (3 as DINOv2's `head_nlayers`: in -> 2048 -> 2048 -> 256; 2 gives in -> 2048 -> 256).
    The last layer is weight-normalised with the gain fixed to 1 (as DINO freezes weight_g), written as an explicit
    normalised weight: `prototypes` [K, bottleneck_dim] is a plain parameter and each row is L2-normalised in
    forward. This equals torch.nn.utils.parametrizations.weight_norm with g = 1 and keeps one ordinary parameter for
    EMA, FSDP and checkpoints.
    """

    def __init__(
        self,
        in_dim: int,
        num_prototypes: int = 65536,
        *,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(d_in, d_out))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.prototypes = nn.Parameter(torch.empty(num_prototypes, bottleneck_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.prototypes)  # only directions matter: rows are normalised in forward

    def forward(self, x: Tensor) -> Tensor:  # [B, in_dim] -> [B, K]
        # eps 1e-6 rather than 1e-12 so the normalisation stays finite in half precision.
        z = F.normalize(self.mlp(x), dim=-1, eps=1e-6)  # [B, bottleneck]
        w = F.normalize(self.prototypes, dim=-1, eps=1e-6)  # [K, bottleneck]
        return F.linear(z, w.to(z.dtype))  # [B, K]
