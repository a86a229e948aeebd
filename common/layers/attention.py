"""Multi-head self-attention with QK-norm, optional grouped-query heads and 2D RoPE on the patch tokens."""

import torch
import torch.nn.functional as F
from torch import nn

from common.layers.rms_norm import RMSNorm
from common.layers.rope import apply_rope


class Attention(nn.Module):
    """Self-attention over [B, N, D] tokens.

    `num_kv_heads` < `num_heads` gives grouped-query attention: k and v are projected to `num_kv_heads` heads and query
    head i reads kv head i // (num_heads / num_kv_heads); at kv heads = heads / 2 the k/v weights and activations are
    halved. QK-norm (a per-head RMSNorm on q and k, before RoPE) bounds the attention
    logits, which keeps large models stable in bf16.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads {num_kv_heads} must divide num_heads {num_heads}")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        # One matmul for q, k and v; the output splits into [q: dim | k: kv_dim | v: kv_dim].
        self.qkv = nn.Linear(dim, dim + 2 * kv_dim, bias=qkv_bias)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, N, D]; rope = (sin, cos) for the patch tokens at the end of the sequence (see `apply_rope`);
        attn_mask broadcastable to [B, H, N, N], bool (True = may attend) or additive float, as in
        `F.scaled_dot_product_attention`."""
        B, N, D = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        q, k, v = self.qkv(x).split((H * Dh, Hkv * Dh, Hkv * Dh), dim=-1)
        q = q.view(B, N, H, Dh).transpose(1, 2)  # [B, H, N, Dh]
        k = k.view(B, N, Hkv, Dh).transpose(1, 2)  # [B, Hkv, N, Dh]
        v = v.view(B, N, Hkv, Dh).transpose(1, 2)  # [B, Hkv, N, Dh]
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, k, *rope)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            enable_gqa=Hkv != H,  # SDPA expands kv head i // (H / Hkv) for query head i itself (torch ≥ 2.5)
        )  # [B, H, N, Dh]
        x = x.transpose(1, 2).reshape(B, N, D)  # [B, N, D]
        return self.proj_drop(self.proj(x))
