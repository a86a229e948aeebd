"""MAE masking of a patch grid: a mix of blockwise (BEiT-style rectangles) and patchwise (uniform) masks.

Every sample gets exactly `num_masked(grid, ratio)` masked patches, so the visible tokens of a batch gather into
one dense [B, N_vis, D] tensor. Masks are bool [B, h*w] in row-major patch order, True = masked (hidden from the
encoder, predicted by the decoder).
"""

import math

import torch
from torch import Tensor

# Rectangle aspect ratios (height / width) are drawn log-uniformly in [0.3, 1 / 0.3], as in BEiT.
MIN_ASPECT = 0.3
# A blockwise mask stops drawing rectangles after this many rejected draws in a row, then tops up at random.
_MAX_REJECTED_DRAWS = 20


def num_masked(grid: tuple[int, int], ratio: float) -> int:
    """Masked patches per sample: round(ratio * h * w) (Python rounding)."""
    h, w = grid
    return round(ratio * h * w)


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (), generator=generator).item())


def _block_mask(
    grid: tuple[int, int],
    target: int,
    min_block_patches: int,
    max_block_patches: int | None,
    generator: torch.Generator | None,
) -> Tensor:
    """Union of random rectangles covering at most `target` patches (exact count is fixed by the caller). [h*w]"""
    h, w = grid
    mask = torch.zeros(h, w, dtype=torch.bool)
    count, rejected = 0, 0
    log_lo, log_hi = math.log(MIN_ASPECT), math.log(1.0 / MIN_ASPECT)
    while target - count >= min_block_patches and rejected < _MAX_REJECTED_DRAWS:
        remaining = target - count
        largest = remaining if max_block_patches is None else min(remaining, max_block_patches)
        area = _uniform(min_block_patches, max(largest, min_block_patches), generator)
        aspect = math.exp(_uniform(log_lo, log_hi, generator))
        bh, bw = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if not (1 <= bh <= h and 1 <= bw <= w):
            rejected += 1
            continue
        top, left = _randint(h - bh + 1, generator), _randint(w - bw + 1, generator)
        new = int((~mask[top : top + bh, left : left + bw]).sum())
        # A rectangle that adds nothing or overshoots the target is redrawn, so blocks never need trimming.
        if new == 0 or new > remaining:
            rejected += 1
            continue
        mask[top : top + bh, left : left + bw] = True
        count += new
        rejected = 0
    return mask.flatten()


def _set_count(mask: Tensor, target: int, generator: torch.Generator | None) -> Tensor:
    """Top up (or trim) a [N] mask at random positions until exactly `target` patches are masked."""
    count = int(mask.sum())
    if count == target:
        return mask
    # Top up among the unmasked patches, or trim among the masked ones.
    pool = (mask if count > target else ~mask).nonzero().squeeze(1)
    pick = pool[torch.randperm(len(pool), generator=generator)[: abs(count - target)]]
    mask = mask.clone()
    mask[pick] = count < target
    return mask


def sample_masks(
    batch_size: int,
    grid: tuple[int, int],
    *,
    ratio: float = 0.75,
    block_fraction: float = 0.5,
    min_block_patches: int = 4,
    max_block_patches: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Bool masks [B, h*w] (True = masked), exactly num_masked(grid, ratio) True per row.

    round(block_fraction * B) samples, at random positions in the batch, are blockwise: rectangles of
    min_block_patches..max_block_patches patches (None: up to the count still missing) are added until the target
    is reached, then the few missing patches are topped up at random. The other samples are patchwise (uniform).
    """
    h, w = grid
    if h < 1 or w < 1:
        raise ValueError(f"grid must be positive, got {grid}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    if not 0.0 <= block_fraction <= 1.0:
        raise ValueError(f"block_fraction must be in [0, 1], got {block_fraction}")
    if min_block_patches < 1:
        raise ValueError(f"min_block_patches must be >= 1, got {min_block_patches}")
    n, target = h * w, num_masked(grid, ratio)
    is_block = torch.zeros(batch_size, dtype=torch.bool)
    is_block[torch.randperm(batch_size, generator=generator)[: round(block_fraction * batch_size)]] = True
    masks = torch.zeros(batch_size, n, dtype=torch.bool)
    for i in range(batch_size):
        if is_block[i]:
            block = _block_mask(grid, target, min_block_patches, max_block_patches, generator)
            masks[i] = _set_count(block, target, generator)
        else:
            masks[i, torch.randperm(n, generator=generator)[:target]] = True
    return masks


def visible_indices(mask: Tensor) -> Tensor:
    """Indices of the visible (False) patches of each row, ascending. [B, N] bool -> [B, N_vis] long.

    Raises if rows differ in their visible count: a dense gather needs the same count in every sample.
    """
    visible = (~mask).sum(dim=1)  # [B]
    if mask.shape[0] and not bool((visible == visible[0]).all()):
        raise ValueError(f"every sample must have the same number of visible patches, got {visible.tolist()}")
    n_visible = int(visible[0]) if mask.shape[0] else 0
    # A stable sort of 0 (visible) before 1 (masked) keeps the visible patches in their original order.
    return torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, :n_visible]


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Tokens at per-sample indices: x [B, N, D], idx [B, M] -> [B, M, D]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
