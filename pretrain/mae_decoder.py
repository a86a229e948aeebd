"""The light MAE decoder: visible encoder tokens + mask tokens -> pixels of every patch."""

import torch
from torch import Tensor, nn

from pretrain.decoder_block import DecoderBlock


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int]) -> Tensor:
    """Fixed 2D sin-cos position embedding for an (h, w) patch grid in row-major order. -> [h*w, dim] float32.

    The first half of the channels encodes the patch row, the second half its column; each half is
    [sin(pos * f), cos(pos * f)] over dim/4 frequencies f = 10000^(-i / (dim/4)).
    """
    if dim % 4:
        raise ValueError(f"the sin-cos embedding needs dim divisible by 4, got {dim}")
    h, w = grid
    quarter = dim // 4
    freqs = 10000.0 ** -(torch.arange(quarter, dtype=torch.float64) / quarter)  # [dim/4]
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)  # [h*w]
    cols = torch.arange(w, dtype=torch.float64).repeat(h)  # [h*w]
    halves = []
    for pos in (rows, cols):
        angles = pos[:, None] * freqs[None, :]  # [h*w, dim/4]
        halves.append(torch.cat([angles.sin(), angles.cos()], dim=1))  # [h*w, dim/2]
    return torch.cat(halves, dim=1).float()  # [h*w, dim]


class MAEDecoder(nn.Module):
    """Linear encoder->decoder projection, mask tokens at the masked positions, fixed 2D sin-cos positions,
    `depth` pre-norm blocks and a linear head to patch_size**2 * in_chans pixels per patch.

    Pixel order per patch matches `pretrain.losses.mae_loss.patchify`: (row in patch, column in patch, channel).
    """

    def __init__(
        self,
        encoder_dim: int,
        patch_size: int,
        *,
        dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(DecoderBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, patch_size**2 * in_chans)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def fill_masked(self, x_visible: Tensor, visible_idx: Tensor, num_patches: int) -> Tensor:
        """Projected visible tokens back at their positions, the mask token everywhere else.

        x_visible [B, N_vis, De], visible_idx [B, N_vis] (from `pretrain.masking.visible_indices`) -> [B, N, Dd]
        """
        if x_visible.shape[:2] != visible_idx.shape:
            raise ValueError(
                f"x_visible {tuple(x_visible.shape)} does not match visible_idx {tuple(visible_idx.shape)}"
            )
        x = self.embed(x_visible)  # [B, N_vis, Dd]
        b, _, d = x.shape
        full = self.mask_token.to(x.dtype).expand(b, num_patches, d)  # [B, N, Dd]
        return full.scatter(1, visible_idx.unsqueeze(-1).expand(-1, -1, d), x)  # [B, N, Dd]

    def forward(
        self, x_visible: Tensor, visible_idx: Tensor, grid: tuple[int, int], prefix: Tensor | None = None
    ) -> Tensor:
        """x_visible [B, N_vis, De] encoder patch tokens, visible_idx [B, N_vis], grid (h, w) with N = h*w,
        prefix [B, P, De] optional [CLS]/register tokens (attended to, get no position, not predicted).
        -> predicted pixels [B, N, patch_size**2 * in_chans]
        """
        h, w = grid
        x = self.fill_masked(x_visible, visible_idx, h * w)  # [B, N, Dd]
        x = x + sincos_pos_embed_2d(self.dim, grid).to(device=x.device, dtype=x.dtype)  # [B, N, Dd]
        n_prefix = 0
        if prefix is not None:
            n_prefix = prefix.shape[1]
            x = torch.cat([self.embed(prefix).to(x.dtype), x], dim=1)  # [B, P+N, Dd]
        for block in self.blocks:
            x = block(x)  # [B, P+N, Dd]
        x = self.norm(x[:, n_prefix:])  # [B, N, Dd]
        return self.head(x)  # [B, N, p*p*C]
