"""PixelShuffle upsampling trunk shared by the dense regression heads (pointmap, normal, albedo).

Each stage is conv 3×3 (C_in → 4·C) → PixelShuffle(2) → GroupNorm → SiLU and doubles the resolution; four stages take
a patch-16 feature map [B, D, H/16, W/16] to full resolution [B, C, H, W], and a final conv 3×3 maps to the output
channels. Sub-pixel convolution rather than deconvolution avoids checkerboard artefacts in smooth targets.
"""

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn


def _upsample_stage(in_channels: int, out_channels: int, max_groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 4 * out_channels, kernel_size=3, padding=1),  # [B, 4C, h, w]
        nn.PixelShuffle(2),  # [B, C, 2h, 2w]
        # GroupNorm, not BatchNorm: full-resolution dense heads train with a few images per device.
        nn.GroupNorm(math.gcd(max_groups, out_channels), out_channels),
        nn.SiLU(),
    )


class PixelShuffleUpsampler(nn.Module):
    def __init__(
        self,
        in_dim: int,
        channels: Sequence[int] = (256, 128, 64, 32),
        out_channels: int = 3,
        max_groups: int = 8,
    ) -> None:
        """`channels`: output channels of each ×2 stage (len 4 → ×16, the Sapiens2 patch size); `max_groups`: the
        GroupNorm group count, reduced to a divisor of each stage's channels."""
        super().__init__()
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"channels must list one positive channel count per ×2 stage, got {list(channels)}")
        self.in_dim = in_dim
        self.upscale = 2 ** len(channels)
        dims = [in_dim, *channels]
        self.stages = nn.Sequential(*(_upsample_stage(a, b, max_groups) for a, b in itertools.pairwise(dims)))
        self.out = nn.Conv2d(dims[-1], out_channels, kernel_size=3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Feature map [B, D, h, w] → [B, out_channels, h·upscale, w·upscale]."""
        if features.ndim != 4 or features.shape[1] != self.in_dim:
            raise ValueError(
                f"expected a feature map [B, {self.in_dim}, h, w], got {tuple(features.shape)}; pass "
                "backbone.get_intermediate_layers(x, n=1, reshape=True)[0]"
            )
        x = self.stages(features)  # [B, C_last, h·upscale, w·upscale]
        return self.out(x)  # [B, out_channels, h·upscale, w·upscale]
