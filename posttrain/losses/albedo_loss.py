"""Albedo loss: L1 + L1 on finite-difference gradients + mean-colour alignment (L1 between the per-image mean colour
of prediction and target over valid pixels), each over valid pixels only."""

import torch
from torch import Tensor, nn

from posttrain.losses.image_gradients import as_valid_mask, gradient_l1, masked_mean


def masked_mean_colour(x: Tensor, valid: Tensor) -> Tensor:
    """Per-image mean colour of x [B, C, H, W] over its valid pixels (valid [B, 1, H, W]) → [B, C]; 0 for an image
    without valid pixels."""
    count = valid.sum(dim=(2, 3)).clamp_min(1)  # [B, 1]
    return torch.where(valid, x, 0.0).sum(dim=(2, 3)) / count  # [B, C]


class AlbedoLoss(nn.Module):
    def __init__(self, l1_weight: float = 1.0, gradient_weight: float = 1.0, mean_colour_weight: float = 1.0) -> None:
        super().__init__()
        self.l1_weight = l1_weight
        self.gradient_weight = gradient_weight
        self.mean_colour_weight = mean_colour_weight

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """pred, target: albedo [B, 3, H, W] in [0, 1]; valid: bool [B, 1, H, W] or [B, H, W].

        Returns {"loss": weighted sum, "l1", "gradient", "mean_colour"}; all 0 when no pixel is valid. The
        mean-colour term averages |mean_pred - mean_target| over channels and over images with a valid pixel."""
        valid = as_valid_mask(valid, target)
        # Zero invalid pixels first: NaN there would otherwise leak into gradients through products.
        pred = torch.where(valid, pred, 0.0)
        target = torch.where(valid, target, 0.0)
        l1 = masked_mean((pred - target).abs(), valid)
        gradient = gradient_l1(pred, target, valid)
        has_valid = valid.flatten(1).any(dim=1)  # [B]
        colour_gap = (masked_mean_colour(pred, valid) - masked_mean_colour(target, valid)).abs()  # [B, C]
        mean_colour = colour_gap[has_valid].sum() / (has_valid.sum() * pred.shape[1]).clamp_min(1)
        loss = self.l1_weight * l1 + self.gradient_weight * gradient + self.mean_colour_weight * mean_colour
        return {"loss": loss, "l1": l1, "gradient": gradient, "mean_colour": mean_colour}
