"""Body-part segmentation head: stride-2 deconvolutions upsample backbone features, a 1×1 conv predicts per-class
logits. Two stages give logits at 1/4 of the input image; `forward(features, out_size)` resizes them bilinearly to
the label resolution for training and evaluation."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posttrain.heads.deconv_upsampler import deconv_upsampler
from posttrain.segmentation_classes import NUM_CLASSES


class SegmentationHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        num_classes: int = NUM_CLASSES,
        deconv_channels: Sequence[int] = (384, 384),
        kernel: int = 4,
        conv_channels: Sequence[int] = (384,),
        dropout: float = 0.0,
    ) -> None:
        """`deconv_channels`: one ×2 stage each (two → 1/4 of the input); `conv_channels`: 1×1 conv → BN → ReLU
        layers after the upsampling, before the classifier."""
        super().__init__()
        self.num_classes = num_classes
        self.upsample = deconv_upsampler(in_dim, deconv_channels, kernel)
        dim = deconv_channels[-1] if deconv_channels else in_dim
        layers: list[nn.Module] = []
        for out_dim in conv_channels:
            layers += [nn.Conv2d(dim, out_dim, 1, bias=False), nn.BatchNorm2d(out_dim), nn.ReLU(inplace=True)]
            dim = out_dim
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(dim, num_classes, 1)
        self.init_weights()

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Backbone feature map [B, D, h, w] → logits [B, C, 4h, 4w] (two stages), or [B, C, *out_size] when given."""
        x = self.upsample(features)  # [B, C', 4h, 4w]
        x = self.convs(x)
        logits = self.classifier(self.dropout(x))  # [B, C, 4h, 4w]
        if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
            logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)  # [B, C, H, W]
        return logits
