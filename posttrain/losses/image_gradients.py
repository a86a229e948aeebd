"""Finite-difference image gradients with validity masks, and the masked reductions the dense losses share.

A difference is valid only where both pixels it joins are valid, so no gradient crosses into an invalid region (a
background pixel or a hole in the ground truth). Masked values are selected with `torch.where`, never multiplied by
the mask, so NaN or inf in invalid pixels cannot reach the loss or its gradient.
"""

import torch
from torch import Tensor


def as_valid_mask(valid: Tensor, x: Tensor) -> Tensor:
    """Bool mask [B, 1, H, W] or [B, H, W] for the map x [B, C, H, W] → [B, 1, H, W]."""
    if valid.dtype != torch.bool:
        raise ValueError(
            f"the validity mask must be bool (True = valid pixel), got {valid.dtype}; pass e.g. `mask > 0`"
        )
    if valid.ndim == 3:
        valid = valid.unsqueeze(1)  # [B, 1, H, W]
    B, _, H, W = x.shape
    if valid.shape != (B, 1, H, W):
        raise ValueError(
            f"the validity mask must be [B, 1, H, W] or [B, H, W] = [{B}, {H}, {W}], got {tuple(valid.shape)}"
        )
    return valid


def masked_mean(x: Tensor, valid: Tensor) -> Tensor:
    """Mean of x [B, C, H, W] over the entries of its valid pixels (valid [B, 1, H, W]); 0 when none is valid."""
    count = valid.sum() * x.shape[1]
    return torch.where(valid, x, 0.0).sum() / count.clamp_min(1)


def spatial_gradients(x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Forward differences of x [B, C, H, W] with their validity, valid [B, 1, H, W] bool.

    Returns (dx, dy, valid_dx, valid_dy), all full size: dx[..., i, j] = x[..., i, j+1] - x[..., i, j] and
    dy[..., i, j] = x[..., i+1, j] - x[..., i, j]; the last column of dx and the last row of dy have no neighbour and
    are invalid. Invalid differences are 0.
    """
    dx = torch.zeros_like(x)
    dy = torch.zeros_like(x)
    valid_dx = torch.zeros_like(valid)
    valid_dy = torch.zeros_like(valid)
    valid_dx[..., :, :-1] = valid[..., :, 1:] & valid[..., :, :-1]  # [B, 1, H, W - 1]
    valid_dy[..., :-1, :] = valid[..., 1:, :] & valid[..., :-1, :]  # [B, 1, H - 1, W]
    dx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]  # [B, C, H, W - 1]
    dy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]  # [B, C, H - 1, W]
    return torch.where(valid_dx, dx, 0.0), torch.where(valid_dy, dy, 0.0), valid_dx, valid_dy


def gradient_l1(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """L1 between the finite differences of pred and target [B, C, H, W]: the mean of |∂pred - ∂target| over every
    valid (pixel, channel, direction) entry, x and y differences pooled; 0 when no difference is valid."""
    pred_dx, pred_dy, valid_dx, valid_dy = spatial_gradients(pred, valid)
    target_dx, target_dy, _, _ = spatial_gradients(target, valid)
    total = torch.where(valid_dx, (pred_dx - target_dx).abs(), 0.0).sum()
    total = total + torch.where(valid_dy, (pred_dy - target_dy).abs(), 0.0).sum()
    count = (valid_dx.sum() + valid_dy.sum()) * pred.shape[1]
    return total / count.clamp_min(1)
