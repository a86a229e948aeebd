"""Pointmap head: PixelShuffle upsampling → per-pixel 3-D points, plus an MLP → one positive scale per image.

Point convention ("normalised by focal length"): a ground-truth point is the camera-space point P = (X, Y, Z)
(OpenCV axes: x right, y down, z forward) divided by the focal length f in pixels at the network's input resolution:
p = P / f. Then z = Z / f is the metric size of one pixel at that depth, which a human's apparent size determines
whatever the lens, and the pixel of p is (u, v) = (cx + f·x/z, cy + f·y/z). The head predicts p only up to a global
positive scale: `PointmapLoss` divides predicted and target points by their own mean depth. `scale` predicts the
target's normaliser (mean z of p over valid pixels), so metric camera points are

    depth_normalise(points, valid)[0] * scale[:, None, None, None] * f.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posttrain.heads.pixel_shuffle_upsampler import PixelShuffleUpsampler


class PointmapHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        channels: Sequence[int] = (256, 128, 64, 32),
        scale_hidden: int = 256,
    ) -> None:
        """`channels`: one ×2 PixelShuffle stage each (4 → full resolution for patch 16); `scale_hidden`: width of
        the scale MLP, which reads the [CLS] token concatenated with the mean-pooled feature map."""
        super().__init__()
        self.upsampler = PixelShuffleUpsampler(in_dim, channels, out_channels=3)
        # Start from a fronto-parallel plane at unit depth, so the loss's depth normaliser starts far from zero.
        nn.init.zeros_(self.upsampler.out.bias)
        with torch.no_grad():
            self.upsampler.out.bias[2] = 1.0
        self.scale_mlp = nn.Sequential(nn.Linear(2 * in_dim, scale_hidden), nn.GELU(), nn.Linear(scale_hidden, 1))

    def forward(self, features: torch.Tensor, cls_token: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feature map [B, D, h, w] and [CLS] token [B, D] → {"points": [B, 3, H, W], "scale": [B] (> 0)}."""
        if cls_token.ndim != 2 or cls_token.shape != (features.shape[0], features.shape[1]):
            raise ValueError(
                f"cls_token must be [B, D] = [{features.shape[0]}, {features.shape[1]}], got {tuple(cls_token.shape)}; "
                "pass the [CLS] token of backbone.get_intermediate_layers(x, n=1, return_class_token=True)"
            )
        points = self.upsampler(features)  # [B, 3, H, W]
        pooled = torch.cat((cls_token, features.mean(dim=(2, 3))), dim=1)  # [B, 2D]
        scale = F.softplus(self.scale_mlp(pooled).squeeze(1))  # [B], > 0
        return {"points": points, "scale": scale}
