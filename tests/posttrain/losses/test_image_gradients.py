import numpy as np
import pytest
import torch

from posttrain.losses.image_gradients import as_valid_mask, gradient_l1, masked_mean, spatial_gradients


def _example(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 5, 6, generator=g)
    valid = torch.rand(2, 1, 5, 6, generator=g) > 0.3
    return x, valid


def _numpy_gradients(x: np.ndarray, valid: np.ndarray):
    B, _, H, W = x.shape
    dx, dy = np.zeros_like(x), np.zeros_like(x)
    vdx, vdy = np.zeros_like(valid), np.zeros_like(valid)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                if j + 1 < W and valid[b, 0, i, j] and valid[b, 0, i, j + 1]:
                    vdx[b, 0, i, j] = True
                    dx[b, :, i, j] = x[b, :, i, j + 1] - x[b, :, i, j]
                if i + 1 < H and valid[b, 0, i, j] and valid[b, 0, i + 1, j]:
                    vdy[b, 0, i, j] = True
                    dy[b, :, i, j] = x[b, :, i + 1, j] - x[b, :, i, j]
    return dx, dy, vdx, vdy


def test_spatial_gradients_equal_a_loop_over_pixels():
    x, valid = _example()
    got = spatial_gradients(x, valid)
    want = _numpy_gradients(x.numpy(), valid.numpy())
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    assert got[2][..., -1].sum() == 0 and got[3][..., -1, :].sum() == 0  # no neighbour past the border


def test_gradient_l1_equals_a_direct_numpy_computation():
    x, valid = _example(1)
    y = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    pdx, pdy, vdx, vdy = _numpy_gradients(x.numpy(), valid.numpy())
    tdx, tdy, _, _ = _numpy_gradients(y.numpy(), valid.numpy())
    mdx, mdy = np.broadcast_to(vdx, pdx.shape), np.broadcast_to(vdy, pdy.shape)
    want = (np.abs(pdx - tdx)[mdx].sum() + np.abs(pdy - tdy)[mdy].sum()) / (mdx.sum() + mdy.sum())
    assert gradient_l1(x, y, valid).item() == pytest.approx(want, rel=1e-6)


def test_nan_in_invalid_pixels_reaches_neither_values_nor_gradients():
    x, valid = _example(3)
    x = torch.where(valid, x, float("nan")).requires_grad_(True)
    dx, dy, _, _ = spatial_gradients(x, valid)
    assert torch.isfinite(dx).all() and torch.isfinite(dy).all()
    (dx.square().sum() + dy.square().sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[~valid.expand_as(x)] == 0).all()


def test_masked_mean_counts_valid_entries_only():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    valid = torch.tensor([[[[True, False], [False, True]]]])
    assert masked_mean(x, valid).item() == pytest.approx((0 + 3 + 4 + 7) / 4)
    assert masked_mean(x, torch.zeros_like(valid)).item() == 0.0


def test_masks_without_channel_dim_are_accepted_and_bad_masks_rejected():
    x = torch.zeros(2, 3, 4, 5)
    assert as_valid_mask(torch.ones(2, 4, 5, dtype=torch.bool), x).shape == (2, 1, 4, 5)
    with pytest.raises(ValueError, match="must be bool"):
        as_valid_mask(torch.ones(2, 1, 4, 5), x)
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        as_valid_mask(torch.ones(2, 1, 5, 4, dtype=torch.bool), x)
