"""2D rotary position embedding (RoPE) for patch tokens; prefix tokens ([CLS], registers) stay unrotated.

Convention (the one of the public Sapiens2 / DINOv3 releases, so weights trained with it keep their meaning):
- a patch's position is its centre (row, col), normalised per axis to [-1, 1]: row = 2·(i + ½)/h − 1. Every grid size
  then spans the same range, so global crops, local crops and a 4K input all see the same angle range;
- a head of dim Dh is viewed as two halves [a | b]; channel j of a and channel j of b form one rotation pair
  ("rotate half" layout). Of the Dh/2 pairs, the first Dh/4 turn with the row, the last Dh/4 with the column;
- pair k of each axis has period base^(k / (Dh/4)) for k < Dh/4, i.e. from 1 up to almost `base`, and the angle
  2π·coord/period. Base 100 rather than the 10000 of text models: coordinates span only 2 units here, and with
  periods up to ~10⁴ most pairs would hardly turn across the whole image and carry no position signal.
Angles are linear in the coordinate, so q·k after rotation depends only on the coordinate difference.
"""

import math

import torch
from torch import nn

_MAX_CACHED_GRIDS = 16  # multi-crop training uses a handful of grid sizes; bound the cache all the same


def patch_coords(
    h: int, w: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Centres of an h × w patch grid in raster order, per axis in [-1, 1]: [h·w, 2] as (row, col)."""
    rows = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (2.0 / h) - 1.0  # [h]
    cols = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (2.0 / w) - 1.0  # [w]
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # [h, w, 2]
    return grid.flatten(0, 1)  # [h·w, 2]


class RopePositionEmbedding(nn.Module):
    """Produces (sin, cos) tables [h·w, Dh] for a patch grid; no parameters, nothing in the state dict."""

    def __init__(self, head_dim: int, base: float = 100.0) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"2D RoPE needs a head dim divisible by 4 (two axes × sin/cos pairs), got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        self._cache: dict[tuple[int, int, torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def periods(self, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        quarter = self.head_dim // 4
        return self.base ** (torch.arange(quarter, device=device, dtype=dtype) / quarter)  # [Dh/4]

    def sincos(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sin, cos) [..., Dh] for arbitrary coordinates [..., 2] (row, col), in float32 or float64 if given
        float64 coordinates; not cached."""
        coords = coords.to(torch.promote_types(coords.dtype, torch.float32))
        angles = 2 * math.pi * coords[..., None] / self.periods(coords.device, coords.dtype)  # [..., 2, Dh/4]
        angles = angles.flatten(-2)  # [..., Dh/2]: row angles, then column angles
        angles = torch.cat((angles, angles), dim=-1)  # [..., Dh]: both members of a pair share the angle
        return angles.sin(), angles.cos()

    def forward(
        self, h: int, w: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sin, cos) [h·w, Dh] for the h × w grid, cached per (h, w, device, dtype)."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        key = (h, w, device, dtype)
        if key not in self._cache:
            if len(self._cache) >= _MAX_CACHED_GRIDS:
                self._cache.clear()
            # Tables built under inference_mode would be inference tensors, which autograd refuses to save for a
            # later training step; build them as ordinary tensors whatever mode the first call came from.
            with torch.inference_mode(False), torch.no_grad():
                # Angles in float32 at least: bf16 would put coarse steps into the positions themselves.
                compute_dtype = torch.float64 if dtype == torch.float64 else torch.float32
                sin, cos = self.sincos(patch_coords(h, w, device, compute_dtype))
                self._cache[key] = (sin.to(dtype), cos.to(dtype))
        return self._cache[key]

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[a | b] → [-b | a] on the last dim: the 90° turn of every (a_j, b_j) pair."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def pad_prefix(sin: torch.Tensor, cos: torch.Tensor, num_prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend `num_prefix` identity rows (sin 0, cos 1) on the token axis (-2), so that one multiply rotates the
    patch tokens and leaves the prefix tokens as they are."""
    pad_shape = (*sin.shape[:-2], num_prefix, sin.shape[-1])
    sin = torch.cat((sin.new_zeros(pad_shape), sin), dim=-2)
    cos = torch.cat((cos.new_ones(pad_shape), cos), dim=-2)
    return sin, cos


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q [B, H, N, Dh] and k [B, Hkv, N, Dh].

    sin/cos are [Np, Dh] (one grid for the batch) or [B, Np, Dh] (per-sample positions, e.g. the visible tokens of
    MAE) and cover the last Np ≤ N tokens; the first N − Np tokens (prefix) are left unrotated.
    """
    num_prefix = q.shape[-2] - sin.shape[-2]
    if num_prefix < 0:
        raise ValueError(f"RoPE tables cover {sin.shape[-2]} tokens but q holds only {q.shape[-2]}")
    if num_prefix:
        sin, cos = pad_prefix(sin, cos, num_prefix)
    if sin.ndim == 3:
        sin, cos = sin[:, None], cos[:, None]  # [B, 1, N, Dh]: broadcast over heads
    sin, cos = sin.to(q.dtype), cos.to(q.dtype)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    return q, k
