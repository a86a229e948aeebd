"""Sapiens2 4K (hierarchical) backbone: a window-local stage in front of the usual global stack.

patch embed (16 px) → group the patch grid into non-overlapping 4 × 4 windows → per window [summary] + 16 patches
→ `local_depth` blocks of full attention inside the window → the summary token's output is the window's token →
the (h/4, w/4) window grid enters the shared global stack of `Sapiens2` (prefix tokens, RoPE, MAE masking, blocks).

Everything after `embed_patches` is the base class, so MAE masks are bool [B, h/4 · w/4] over the *window* grid
(True = hidden) and RoPE positions are window-grid positions. A window's pixels reach only its own summary token
before masking, so a hidden window cannot leak into any visible output.

Differences from the public release's 4K "tokenizer" (same dataflow, our own building blocks): positions inside a
window come from RoPE on the window's 4 × 4 local coordinates instead of a learned absolute embedding, and the local
blocks are our `Block` (QK-norm kept; LayerScale started at 1, see `LOCAL_LAYER_SCALE_INIT`). Its 4K checkpoint is
therefore not loadable into this class as is.
"""

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from common.layers import Block
from common.layers.rope import pad_prefix
from common.models.sapiens2 import Sapiens2, _init_module
from common.models.sizes import SIZES

# Our nominal 4K input (not a release value): 4 × 4 windows pool it to the 64 × 48 grid the base sees at 1024 × 768.
DEFAULT_4K_IMG_SIZE = (4096, 3072)
# Local blocks start with LayerScale 1, not the global stack's 1e-5: the summary token learns about its window only
# through attention, and a 1e-5 gain would hand the global stack a near-constant token per window at init.
LOCAL_LAYER_SCALE_INIT = 1.0


class Sapiens2Hierarchical(Sapiens2):
    def __init__(self, *, local_depth: int = 4, window_size: int = 4, **kwargs: Any) -> None:
        """`local_depth` blocks of window attention over `window_size`² patches; other arguments as `Sapiens2`
        (`img_size` defaults to the nominal 4K input). Default depth 4: the release's local-stage depth for its 1b
        size, the one size with a published 4K checkpoint (`create_backbone_4k` takes each size's own depth)."""
        kwargs.setdefault("img_size", DEFAULT_4K_IMG_SIZE)
        super().__init__(**kwargs)
        if local_depth < 1:
            raise ValueError(f"local_depth must be ≥ 1, got {local_depth}")
        self.local_depth = local_depth
        self.window_size = window_size
        self.summary_token = nn.Parameter(torch.zeros(1, 1, self.dim))  # one learned [summary] shared by all windows
        self.local_blocks = nn.ModuleList(
            Block(
                self.dim,
                self.num_heads,
                mlp_ratio=kwargs.get("mlp_ratio", 4.0),  # full multi-head attention: 17 tokens make GQA moot
                qkv_bias=kwargs.get("qkv_bias", True),
                layer_scale_init=LOCAL_LAYER_SCALE_INIT,
            )
            for _ in range(local_depth)
        )
        self._init_local_stage()

    def init_weights(self) -> None:
        super().init_weights()
        if "local_blocks" in self._modules:  # the base __init__ calls this before the local stage exists
            self._init_local_stage()

    def _init_local_stage(self) -> None:
        nn.init.trunc_normal_(self.summary_token, std=0.02)
        self.local_blocks.apply(_init_module)

    def embed_patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images [B, C, H, W] → one token per window [B, h/ws · w/ws, D] in raster order, and the window grid."""
        x, (h, w) = self.patch_embed(x)  # [B, h·w, D]
        ws = self.window_size
        if h % ws or w % ws:
            side = ws * self.patch_size
            raise ValueError(
                f"the 4K backbone needs the input size to be a multiple of {side} px ({ws}×{ws} windows of "
                f"{self.patch_size} px patches), got a {h}×{w} patch grid; resize, crop or pad the image"
            )
        B, _, D = x.shape
        hw, ww = h // ws, w // ws
        x = x.view(B, hw, ws, ww, ws, D).permute(0, 1, 3, 2, 4, 5)  # [B, hw, ww, ws, ws, D]
        x = x.reshape(B * hw * ww, ws * ws, D)  # [B·nW, ws², D]: windows as the batch, so attention stays inside
        x = torch.cat((self.summary_token.expand(x.shape[0], -1, -1), x), dim=1)  # [B·nW, 1 + ws², D]
        # RoPE on the window's own ws × ws grid; the summary token is a prefix and stays unrotated, like [CLS].
        rope = pad_prefix(*self.rope(ws, ws, device=x.device), 1)  # 2 × [1 + ws², Dh]
        for block in self.local_blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
        return x[:, 0].reshape(B, hw * ww, D), (hw, ww)  # [B, nW, D]: the summary token is the pooled window


def create_backbone_4k(name: str, **overrides: Any) -> Sapiens2Hierarchical:
    """The 4K backbone of size `name` (any row of `SIZES`), with that size's `local_depth` unless overridden;
    `overrides` are `Sapiens2Hierarchical` / `Sapiens2` keyword arguments."""
    if name not in SIZES:
        raise ValueError(f"unknown backbone size {name!r}; known sizes: {', '.join(SIZES)}")
    size = SIZES[name]
    kwargs = {
        "dim": size.dim,
        "depth": size.depth,
        "num_heads": size.num_heads,
        "local_depth": size.local_depth,
        **overrides,
    }
    return Sapiens2Hierarchical(**kwargs)
