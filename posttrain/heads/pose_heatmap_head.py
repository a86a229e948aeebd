"""Top-down pose head: stride-2 deconvolutions upsample backbone features, a final conv predicts one heatmap per
keypoint (SimpleBaseline / mmpose HeatmapHead, as Sapiens uses). With patch 16 and two stages the heatmaps are at 1/4
of the input image (1024×768 → 256×192)."""

from collections.abc import Sequence

import torch
from torch import nn

from posttrain.heads.deconv_upsampler import deconv_upsampler


class PoseHeatmapHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        num_keypoints: int,
        deconv_channels: Sequence[int] = (768, 768),
        kernel: int = 4,
        final_conv_kernel: int = 1,
    ) -> None:
        """`in_dim` is the backbone width; `num_keypoints` K (308 for Sapiens2, 17 for COCO, any keypoint spec)."""
        super().__init__()
        if final_conv_kernel % 2 == 0:
            raise ValueError(f"final_conv_kernel must be odd to keep the heatmap size, got {final_conv_kernel}")
        self.num_keypoints = num_keypoints
        self.upsample = deconv_upsampler(in_dim, deconv_channels, kernel)
        out_dim = deconv_channels[-1] if deconv_channels else in_dim
        self.final = nn.Conv2d(out_dim, num_keypoints, final_conv_kernel, padding=final_conv_kernel // 2)
        self.init_weights()

    def init_weights(self) -> None:
        # Small weights, zero bias: the initial heatmaps are close to zero, which is most of every target heatmap.
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone feature map [B, D, h, w] → heatmaps [B, K, h·2^n, w·2^n] (n = number of deconv stages)."""
        x = self.upsample(features)  # [B, C, 4h, 4w] with the default two stages
        return self.final(x)  # [B, K, 4h, 4w]
