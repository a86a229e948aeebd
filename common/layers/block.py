"""Pre-norm transformer block: RMSNorm → attention → LayerScale, then RMSNorm → SwiGLU."""

import torch
from torch import nn

from common.layers.attention import Attention
from common.layers.drop_path import DropPath
from common.layers.layer_scale import LayerScale
from common.layers.rms_norm import RMSNorm
from common.layers.swiglu import SwiGLUFFN


class Block(nn.Module):
    """x + drop_path(ls1(attn(norm1(x)))), then x + drop_path(mlp(norm2(x))).

    LayerScale sits on the attention branch only: that is where the Sapiens2 release puts it (its FFN is built with
    the LayerScale switched off). A second gain on the FFN branch would add just `dim` parameters per block, so the
    published parameter counts cannot decide this either way; the release code does.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_scale_init: float = 1e-5,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, num_heads, num_kv_heads=num_kv_heads, qkv_bias=qkv_bias)
        self.ls1 = LayerScale(dim, layer_scale_init)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLUFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), rope=rope, attn_mask=attn_mask)))  # [B, N, D]
        return x + self.drop_path(self.mlp(self.norm2(x)))  # [B, N, D]
