"""Heatmap MSE with online hard keypoint mining (OHKM), the pose loss of Sapiens (mmpose KeypointOHKMMSELoss).

Reduction, for predicted and target heatmaps [B, K, H, W] and target weights w [B, K]:

    l[b, k] = w[b, k] · mean_{h, w} (pred[b, k] - target[b, k])²        per-keypoint loss
    OHKM on (topk = k > 0):  keypoint_mse = mean_b ( (1/k) · Σ of the k largest l[b, :] )
    OHKM off (topk 0/None):  keypoint_mse = mean_{b, k} l[b, k]
    loss = loss_weight · keypoint_mse

A zero weight (unlabelled or invisible keypoint) removes the keypoint exactly: its l is 0, so it never ranks above a
labelled one with an error, and the top-k mean still divides by k (as mmpose does). The weight multiplies the squared
error once; mmpose multiplies both heatmaps by it, i.e. squares it, which only differs for fractional weights.
"""

import torch
from torch import Tensor, nn


class KeypointMSEOHKMLoss(nn.Module):
    def __init__(self, use_target_weight: bool = True, topk: int | None = 8, loss_weight: float = 1.0) -> None:
        super().__init__()
        if topk is not None and topk < 0:
            raise ValueError(f"topk must be >= 0 (0 or None turns hard keypoint mining off), got {topk}")
        self.use_target_weight = use_target_weight
        self.topk = topk or 0
        self.loss_weight = loss_weight

    def per_keypoint(self, pred: Tensor, target: Tensor, target_weight: Tensor | None = None) -> Tensor:
        """Heatmaps [B, K, H, W] (+ weights [B, K]) → weighted per-keypoint MSE l [B, K], in float32."""
        if pred.shape != target.shape or pred.ndim != 4:
            raise ValueError(
                f"pred and target must both be [B, K, H, W], got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        losses = (pred.float() - target.float()).square().mean(dim=(2, 3))  # [B, K]
        if self.use_target_weight:
            if target_weight is None or target_weight.shape != losses.shape:
                got = None if target_weight is None else tuple(target_weight.shape)
                raise ValueError(
                    f"target_weight must be [B, K] = {tuple(losses.shape)}, got {got}; "
                    "pass use_target_weight=False to weight every keypoint equally"
                )
            losses = losses * target_weight.float()
        return losses

    def forward(self, pred: Tensor, target: Tensor, target_weight: Tensor | None = None) -> dict[str, Tensor]:
        """Heatmaps [B, K, H, W], target weights [B, K] → {"loss", "keypoint_mse"} scalars (see module docstring)."""
        losses = self.per_keypoint(pred, target, target_weight)  # [B, K]
        if self.topk:
            if self.topk > losses.shape[1]:
                raise ValueError(f"topk {self.topk} exceeds the {losses.shape[1]} keypoints; lower topk or set it to 0")
            hardest = torch.topk(losses, self.topk, dim=1, sorted=False).values  # [B, k]
            mse = hardest.mean(dim=1).mean()
        else:
            mse = losses.mean()
        return {"loss": self.loss_weight * mse, "keypoint_mse": mse.detach()}
