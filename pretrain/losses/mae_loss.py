"""MAE reconstruction loss: MSE on per-patch normalised pixels, over the masked patches only."""

import torch
from torch import Tensor


def patchify(images: Tensor, patch: int) -> Tensor:
    """[B, C, H, W] -> [B, N, p*p*C] with N = (H/p)*(W/p) patches in row-major order and each patch's pixels in
    (row in patch, column in patch, channel) order."""
    b, c, height, width = images.shape
    if height % patch or width % patch:
        raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {patch}")
    h, w = height // patch, width // patch
    x = images.reshape(b, c, h, patch, w, patch)  # [B, C, h, p, w, p]
    x = x.permute(0, 2, 4, 3, 5, 1)  # [B, h, w, p, p, C]
    return x.reshape(b, h * w, patch * patch * c)  # [B, N, p*p*C]


def mae_loss(
    pred: Tensor, images: Tensor, mask: Tensor, patch: int, norm_pix: bool = True, eps: float = 1e-6
) -> Tensor:
    """pred [B, N, p*p*C] decoder output, images [B, C, H, W], mask [B, N] bool (True = masked) -> scalar.

    With norm_pix each target patch is standardised by its own mean and (population) variance:
    (x - mean) / sqrt(var + eps). The per-patch MSE is averaged over all masked patches of the batch (every sample
    has the same masked count, so this is also the mean of the per-sample losses). Computed in float32.
    """
    target = patchify(images, patch).float()  # [B, N, p*p*C]
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} does not match the patchified images {tuple(target.shape)}")
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)  # [B, N, 1]
        var = target.var(dim=-1, correction=0, keepdim=True)  # [B, N, 1]
        target = (target - mean) / torch.sqrt(var + eps)
    per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # [B, N]
    weight = mask.to(per_patch.dtype)  # [B, N]
    # clamp: no masked patch at all (ratio 0) gives a loss of 0 rather than NaN, without a host sync to check.
    return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)
