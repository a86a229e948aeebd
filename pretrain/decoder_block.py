"""A plain pre-norm transformer block for the MAE decoder (self-contained: no dependency on the backbone's layers)."""

import torch.nn.functional as F
from torch import Tensor, nn


class DecoderBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)); multi-head attention through F.scaled_dot_product_attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def attention(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)  # [B, N, 3, H, Dh]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, H, N, Dh]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, Dh]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # [B, N, D]

    def forward(self, x: Tensor) -> Tensor:  # [B, N, D] -> [B, N, D]
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))
