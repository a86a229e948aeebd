"""Surface-normal loss: angular (1 - cos) + L1 on the vector components + L1 on their finite-difference gradients,
each averaged over valid pixels only."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posttrain.losses.image_gradients import as_valid_mask, gradient_l1, masked_mean


def cosine_distance(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """1 - cos of the angle between the vectors pred and target [B, 3, H, W] per pixel → [B, 1, H, W].

    Computed as ½·|p̂ - t̂|², equal to 1 - cos for unit vectors, because it is exactly 0 for equal inputs where
    1 - p̂·t̂ rounds to ~1e-7, and its gradient stays finite at 0. A zero vector gets distance ½·|other|²."""
    pred = F.normalize(pred, dim=1, eps=eps)
    target = F.normalize(target, dim=1, eps=eps)
    return 0.5 * (pred - target).square().sum(dim=1, keepdim=True)  # [B, 1, H, W]


class NormalLoss(nn.Module):
    def __init__(self, cosine_weight: float = 1.0, l1_weight: float = 1.0, gradient_weight: float = 1.0) -> None:
        super().__init__()
        self.cosine_weight = cosine_weight
        self.l1_weight = l1_weight
        self.gradient_weight = gradient_weight

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """pred, target: normals [B, 3, H, W] (target unit length); valid: bool [B, 1, H, W] or [B, H, W].

        Returns {"loss": weighted sum, "cosine", "l1", "gradient"}; all 0 when no pixel is valid."""
        valid = as_valid_mask(valid, target)
        # Zero invalid pixels first: NaN there would otherwise leak into gradients through products.
        pred = torch.where(valid, pred, 0.0)
        target = torch.where(valid, target, 0.0)
        cosine = masked_mean(cosine_distance(pred, target), valid)
        l1 = masked_mean((pred - target).abs(), valid)
        gradient = gradient_l1(pred, target, valid)
        loss = self.cosine_weight * cosine + self.l1_weight * l1 + self.gradient_weight * gradient
        return {"loss": loss, "cosine": cosine, "l1": l1, "gradient": gradient}
