"""Albedo head: PixelShuffle upsampling → RGB through a sigmoid.

Output convention: RGB albedo [B, 3, H, W], each channel in [0, 1]: the range of 8-bit targets divided by 255, in
the colour space the targets are stored in (no gamma applied here).
"""

from collections.abc import Sequence

import torch
from torch import nn

from posttrain.heads.pixel_shuffle_upsampler import PixelShuffleUpsampler


class AlbedoHead(nn.Module):
    def __init__(self, in_dim: int, channels: Sequence[int] = (256, 128, 64, 32)) -> None:
        """`channels`: one ×2 PixelShuffle stage each (4 → full resolution for patch 16)."""
        super().__init__()
        self.upsampler = PixelShuffleUpsampler(in_dim, channels, out_channels=3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Feature map [B, D, h, w] → albedo [B, 3, H, W] in [0, 1]."""
        return torch.sigmoid(self.upsampler(features))  # [B, 3, H, W]
