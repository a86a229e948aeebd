import pytest
import torch

from pretrain.mae_decoder import MAEDecoder, sincos_pos_embed_2d
from pretrain.masking import gather_tokens, sample_masks, visible_indices


def _inputs(batch: int, grid: tuple[int, int], encoder_dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = sample_masks(batch, grid, generator=g)  # [B, N]
    idx = visible_indices(mask)  # [B, N_vis]
    tokens = torch.randn(batch, grid[0] * grid[1], encoder_dim, generator=g)  # [B, N, De]
    return mask, idx, gather_tokens(tokens, idx)


def _decoder(**kwargs) -> MAEDecoder:
    torch.manual_seed(0)
    return MAEDecoder(encoder_dim=24, patch_size=4, dim=32, depth=2, num_heads=4, **kwargs)


@pytest.mark.parametrize("grid", [(4, 6), (8, 8), (3, 5)])
def test_output_has_pixels_for_every_patch(grid):
    decoder = _decoder()
    _, idx, x_vis = _inputs(3, grid, 24)
    pred = decoder(x_vis, idx, grid)
    assert pred.shape == (3, grid[0] * grid[1], 4 * 4 * 3)
    prefix = torch.randn(3, 9, 24)  # [CLS] + 8 registers
    assert decoder(x_vis, idx, grid, prefix=prefix).shape == pred.shape


def test_only_mask_token_positions_are_new():
    decoder = _decoder()
    mask, idx, x_vis = _inputs(2, (4, 6), 24)
    full = decoder.fill_masked(x_vis, idx, 24)  # [B, N, Dd]
    projected = decoder.embed(x_vis)  # [B, N_vis, Dd]
    assert full.shape == (2, 24, 32)
    for b in range(2):
        torch.testing.assert_close(full[b, ~mask[b]], projected[b], rtol=0, atol=0)
        assert torch.equal(full[b, mask[b]], decoder.mask_token[0].expand(int(mask[b].sum()), 32))


def test_gradients_reach_the_mask_token_and_the_visible_tokens():
    decoder = _decoder()
    _, idx, x_vis = _inputs(2, (4, 6), 24)
    x_vis.requires_grad_(True)
    decoder(x_vis, idx, (4, 6)).square().mean().backward()
    assert decoder.mask_token.grad is not None and decoder.mask_token.grad.abs().sum() > 0
    assert x_vis.grad is not None and x_vis.grad.abs().sum() > 0


def test_runs_under_bf16_autocast():
    decoder = _decoder()
    _, idx, x_vis = _inputs(2, (4, 6), 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = decoder(x_vis, idx, (4, 6))
    assert pred.shape == (2, 24, 48) and torch.isfinite(pred.float()).all()


def test_default_sizes():
    decoder = MAEDecoder(encoder_dim=64, patch_size=16)
    assert decoder.dim == 512 and len(decoder.blocks) == 8
    assert decoder.head.out_features == 16 * 16 * 3
    assert decoder.blocks[0].fc1.out_features == 4 * 512


def test_sincos_embedding_layout():
    pos = sincos_pos_embed_2d(16, (3, 5))  # [15, 16]
    assert pos.shape == (15, 16)
    quarter = 4
    # Patch (0, 0): every sine is 0, every cosine 1.
    assert torch.equal(pos[0], torch.tensor(([0.0] * quarter + [1.0] * quarter) * 2))
    # Row half depends on the row only, column half on the column only (row-major order: index = r * 5 + c).
    assert torch.equal(pos[7, :8], pos[5, :8]) and torch.equal(pos[7, 8:], pos[2, 8:])
    assert len({tuple(p.tolist()) for p in pos}) == 15
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_pos_embed_2d(10, (2, 2))
