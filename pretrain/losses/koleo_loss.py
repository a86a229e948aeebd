"""KoLeo regulariser (Kozachenko-Leonenko entropy estimator): pushes each embedding away from its nearest neighbour
in the batch, spreading the student's [CLS] features uniformly over the sphere."""

import torch
import torch.nn.functional as F
from torch import Tensor


def koleo_loss(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x [B, D] student [CLS] features (L2-normalised here) -> -mean_i log(d_i + eps), d_i the Euclidean distance
    from sample i to its nearest other sample. Per rank: the batch is the local one. Computed in float32."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"koleo_loss needs [B >= 2, D] features, got {tuple(x.shape)}")
    x = F.normalize(x.float(), dim=-1, eps=eps)  # [B, D]
    with torch.no_grad():
        # On the unit sphere the nearest neighbour is the one with the largest inner product.
        sim = x @ x.t()  # [B, B]
        sim.fill_diagonal_(float("-inf"))
        nearest = sim.argmax(dim=1)  # [B]
    dist = torch.linalg.vector_norm(x - x[nearest], dim=-1)  # [B]
    return -torch.log(dist + eps).mean()
