"""Sapiens2 backbone: patch embedding → [CLS] + register tokens → pre-norm RMSNorm/SwiGLU blocks → final RMSNorm.

Positions come from 2D RoPE on the patch tokens only (no learned absolute embedding), so any grid size runs. The
first and last `num_mha_first` / `num_mha_last` blocks use multi-head attention, the ones between grouped-query
attention with num_heads / kv_head_ratio kv heads.

MAE masking contract of `forward_features(x, masks)`: `masks` is bool [B, N] over the patch grid in raster order,
True = hidden. The encoder sees the visible patches only: they are gathered per sample in ascending grid order and
keep the RoPE position of their original grid cell. Every sample must keep the same number of patches (a batch is
one tensor), which a fixed mask ratio per batch guarantees. The output holds the visible patch tokens [B, Nv, D] and
their grid indices `ids_keep` [B, Nv], which is what a decoder needs to put mask tokens back.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from common.layers import Block, LayerScale, PatchEmbed, RMSNorm, RopePositionEmbedding
from common.layers.rope import pad_prefix

Rope = tuple[torch.Tensor, torch.Tensor]


def visible_token_indices(masks: torch.Tensor) -> torch.Tensor:
    """Bool masks [B, N] (True = hidden) → grid indices of the visible patches [B, Nv], ascending per sample."""
    if masks.dtype != torch.bool or masks.ndim != 2:
        raise ValueError(f"masks must be a bool tensor [B, N] (True = hidden), got {masks.dtype} {tuple(masks.shape)}")
    num_visible = (~masks).sum(dim=1)  # [B]
    if bool((num_visible != num_visible[0]).any()):
        raise ValueError(
            f"every sample must keep the same number of visible patches, got {sorted(set(num_visible.tolist()))}; "
            "draw masks with one fixed mask ratio per batch"
        )
    # A stable sort of the hidden flags puts the visible (False) patches first, in their original order.
    return torch.argsort(masks.to(torch.uint8), dim=1, stable=True)[:, : int(num_visible[0])]  # [B, Nv]


class Sapiens2(nn.Module):
    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        patch_size: int = 16,
        in_chans: int = 3,
        img_size: tuple[int, int] = (1024, 768),
        num_register_tokens: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        num_mha_first: int = 8,
        num_mha_last: int = 8,
        kv_head_ratio: int = 2,
        rope_base: float = 100.0,
        layer_scale_init: float = 1e-5,
        drop_path_rate: float = 0.0,
        grad_checkpointing: bool = False,
    ) -> None:
        """`img_size` (H, W) is the nominal input size, for heads and decoders that size themselves from it; the
        backbone itself runs on any multiple of `patch_size`."""
        super().__init__()
        self.dim = dim
        self.depth = depth
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.img_size = tuple(img_size)
        self.num_register_tokens = num_register_tokens
        self.num_prefix_tokens = 1 + num_register_tokens
        self.grad_checkpointing = grad_checkpointing
        if depth > num_mha_first + num_mha_last and num_heads % kv_head_ratio:
            raise ValueError(f"kv_head_ratio {kv_head_ratio} must divide num_heads {num_heads} for the GQA blocks")
        self.kv_heads = [
            num_heads if i < num_mha_first or i >= depth - num_mha_last else num_heads // kv_head_ratio
            for i in range(depth)
        ]  # kv heads per block: MHA at both ends, GQA between

        self.patch_embed = PatchEmbed(dim, patch_size, in_chans)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, dim))
        self.rope = RopePositionEmbedding(dim // num_heads, base=rope_base)
        # Stochastic depth grows linearly from 0 at the first block to drop_path_rate at the last.
        drop_rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(
                dim,
                num_heads,
                num_kv_heads=kv_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                layer_scale_init=layer_scale_init,
                drop_path=rate,
            )
            for kv_heads, rate in zip(self.kv_heads, drop_rates, strict=True)
        )
        self.norm = RMSNorm(dim)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.register_tokens, std=0.02)
        self.apply(_init_module)

    # -- tokens ---------------------------------------------------------------------------------------------------

    def embed_patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images [B, C, H, W] → patch tokens [B, N, D] and their grid (h, w). A 4K variant overrides this to add
        its local window stage; masking, prefix tokens, RoPE and the blocks after it are shared."""
        return self.patch_embed(x)

    def prepare_tokens(
        self, x: torch.Tensor, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Rope, tuple[int, int], torch.Tensor | None]:
        """Images → (tokens [B, P + Nv, D] with P = 1 + registers, RoPE tables for them, grid (h, w), ids_keep)."""
        x, (h, w) = self.embed_patches(x)  # [B, N, D]
        B, N, D = x.shape
        sin, cos = self.rope(h, w, device=x.device)  # [N, Dh]
        ids_keep = None
        if masks is not None:
            if masks.shape != (B, N):
                raise ValueError(f"masks must be [B, N] = [{B}, {N}] for a {h}×{w} patch grid, got {list(masks.shape)}")
            ids_keep = visible_token_indices(masks)  # [B, Nv]
            x = x.gather(1, ids_keep[..., None].expand(-1, -1, D))  # [B, Nv, D]
            sin, cos = sin[ids_keep], cos[ids_keep]  # [B, Nv, Dh]: kept tokens keep their grid positions
        prefix = torch.cat((self.cls_token, self.register_tokens), dim=1).expand(B, -1, -1)  # [B, P, D]
        x = torch.cat((prefix, x), dim=1)  # [B, P + Nv, D]
        rope = pad_prefix(sin, cos, self.num_prefix_tokens)  # once here rather than in every block
        return x, rope, (h, w), ids_keep

    def run_blocks(
        self, x: torch.Tensor, rope: Rope, keep: Sequence[int] = ()
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Tokens through the blocks → (last output, outputs of the blocks listed in `keep`, in block order)."""
        outputs = []
        for i, block in enumerate(self.blocks):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
            if i in keep:
                outputs.append(x)
        return x, outputs

    # -- public API -----------------------------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """Images [B, C, H, W] (+ optional MAE masks [B, N], see the module docstring) → named outputs."""
        x, rope, _, ids_keep = self.prepare_tokens(x, masks)
        x, _ = self.run_blocks(x, rope)  # [B, P + Nv, D]
        x_norm = self.norm(x)
        P = self.num_prefix_tokens
        return {
            "x_norm_clstoken": x_norm[:, 0],  # [B, D]
            "x_norm_regtokens": x_norm[:, 1:P],  # [B, R, D]
            "x_norm_patchtokens": x_norm[:, P:],  # [B, Nv, D] (Nv = N without masks)
            "x_prenorm": x,  # [B, P + Nv, D]
            "masks": masks,  # [B, N] or None
            "ids_keep": ids_keep,  # [B, Nv] grid indices of the patch tokens, or None
        }

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = True,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple[torch.Tensor, ...] | tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Patch tokens of the last `n` blocks (int) or of the given block indices (negative ones count from the
        end), in that order: [B, D, h, w] when `reshape`, else [B, N, D]; each paired with the [CLS] token [B, D]
        when `return_class_token`. `norm` applies the final RMSNorm to every output, as heads expect."""
        indices = self._block_indices(n)
        tokens, rope, (h, w), _ = self.prepare_tokens(x)
        wanted = sorted(set(indices))
        _, outputs = self.run_blocks(tokens, rope, keep=wanted)
        by_index = dict(zip(wanted, outputs, strict=True))
        results = []
        for i in indices:
            out = self.norm(by_index[i]) if norm else by_index[i]  # [B, P + N, D]
            patches = out[:, self.num_prefix_tokens :]  # [B, N, D]
            if reshape:
                patches = patches.unflatten(1, (h, w)).permute(0, 3, 1, 2).contiguous()  # [B, D, h, w]
            results.append((patches, out[:, 0]) if return_class_token else patches)
        return tuple(results)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] → the normalised [CLS] embedding [B, D]."""
        return self.forward_features(x)["x_norm_clstoken"]

    def _block_indices(self, n: int | Sequence[int]) -> list[int]:
        if isinstance(n, int):
            if not 1 <= n <= self.depth:
                raise ValueError(f"n must be in [1, {self.depth}] (the model has {self.depth} blocks), got {n}")
            return list(range(self.depth - n, self.depth))
        bad = [i for i in n if not -self.depth <= i < self.depth]
        if bad or not n:
            raise ValueError(f"block indices must be in [-{self.depth}, {self.depth}), got {list(n)}")
        return [i % self.depth for i in n]


def _init_module(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.RMSNorm | LayerScale):
        module.reset_parameters()
