"""Surface-normal head: PixelShuffle upsampling → 3 channels → per-pixel L2 normalisation.

Output convention: unit vectors [B, 3, H, W] in camera coordinates (OpenCV axes: x right, y down, z forward), the
same frame as the normals `posttrain.losses.pointmap_loss.normals_from_points` derives from a point map; visible
surfaces face the camera (n_z < 0).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posttrain.heads.pixel_shuffle_upsampler import PixelShuffleUpsampler


class NormalHead(nn.Module):
    def __init__(self, in_dim: int, channels: Sequence[int] = (256, 128, 64, 32), eps: float = 1e-6) -> None:
        """`channels`: one ×2 PixelShuffle stage each (4 → full resolution for patch 16); `eps` bounds the norm
        from below so a zero vector gives a zero normal, not NaN."""
        super().__init__()
        self.upsampler = PixelShuffleUpsampler(in_dim, channels, out_channels=3)
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Feature map [B, D, h, w] → unit normals [B, 3, H, W]."""
        x = self.upsampler(features)  # [B, 3, H, W]
        return F.normalize(x, dim=1, eps=self.eps)  # [B, 3, H, W]
