"""Patch embedding: one strided convolution turns an image into a grid of patch tokens."""

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping `patch_size` × `patch_size` patches → `dim`-d tokens in row-major (raster) order."""

    def __init__(self, dim: int, patch_size: int = 16, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """[B, C, H, W] → tokens [B, h·w, D] and the grid (h, w) = (H / patch, W / patch)."""
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            # A strided conv would silently drop the remainder rows/columns; make the caller crop or pad instead.
            raise ValueError(
                f"input size {height}×{width} is not a multiple of the patch size {self.patch_size}; "
                "resize, crop or pad the image to a multiple of it"
            )
        x = self.proj(x)  # [B, D, h, w]
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid  # [B, h·w, D]
