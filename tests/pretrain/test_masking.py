import pytest
import torch

from pretrain.masking import gather_tokens, num_masked, sample_masks, visible_indices


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perimeter(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per sample, the number of 4-neighbour patch pairs where one is masked and the other is not. [B]"""
    g = mask.view(-1, *grid)
    return (g[:, 1:] != g[:, :-1]).sum((1, 2)) + (g[:, :, 1:] != g[:, :, :-1]).sum((1, 2))


def _components(mask: torch.Tensor, grid: tuple[int, int]) -> int:
    """4-connected components of the True patches of one [h*w] mask."""
    w = grid[1]
    cells = {(i // w, i % w) for i in mask.nonzero().flatten().tolist()}
    count = 0
    while cells:
        count += 1
        stack = [cells.pop()]
        while stack:
            r, c = stack.pop()
            for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if nb in cells:
                    cells.remove(nb)
                    stack.append(nb)
    return count


@pytest.mark.parametrize("grid", [(14, 14), (16, 12), (5, 3), (64, 48)])
@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.4])
@pytest.mark.parametrize("block_fraction", [0.0, 0.5, 1.0])
def test_every_sample_has_exactly_the_target_count(grid, ratio, block_fraction):
    mask = sample_masks(6, grid, ratio=ratio, block_fraction=block_fraction, generator=_gen(0))
    assert mask.shape == (6, grid[0] * grid[1]) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [round(ratio * grid[0] * grid[1])] * 6


def test_default_ratio_is_three_quarters():
    mask = sample_masks(4, (64, 48), generator=_gen(0))
    assert num_masked((64, 48), 0.75) == 2304
    assert (mask.sum(dim=1) == 2304).all()


def test_same_seed_same_masks_other_seed_other_masks():
    a = sample_masks(8, (14, 14), generator=_gen(3))
    b = sample_masks(8, (14, 14), generator=_gen(3))
    c = sample_masks(8, (14, 14), generator=_gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_blockwise_masks_are_few_rectangles_patchwise_are_scattered():
    grid = (14, 14)
    block = sample_masks(16, grid, block_fraction=1.0, generator=_gen(0))
    patch = sample_masks(16, grid, block_fraction=0.0, generator=_gen(0))
    # Rectangles have a short boundary; uniform masking at 75 % has ~2 * 13 * 14 * 2 * 0.75 * 0.25 = 136 edges.
    assert _perimeter(block, grid).float().mean() < 0.5 * _perimeter(patch, grid).float().mean()
    # At 75 % masked, uniform sampling leaves many isolated visible islands; blocks leave few.
    block_islands = sum(_components(~m, grid) for m in block) / 16
    patch_islands = sum(_components(~m, grid) for m in patch) / 16
    assert block_islands < 0.5 * patch_islands
    # At a low ratio the masked patches themselves form few connected pieces.
    low_block = sample_masks(16, grid, ratio=0.3, block_fraction=1.0, generator=_gen(1))
    low_patch = sample_masks(16, grid, ratio=0.3, block_fraction=0.0, generator=_gen(1))
    assert sum(_components(m, grid) for m in low_block) < 0.25 * sum(_components(m, grid) for m in low_patch)


def test_block_fraction_sets_the_share_of_blockwise_samples():
    grid = (64, 48)
    mask = sample_masks(8, grid, block_fraction=0.5, generator=_gen(5))
    # Blockwise perimeters are in the hundreds, patchwise ones in the thousands at this grid size.
    assert (_perimeter(mask, grid) < 1000).sum() == 4


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="ratio"):
        sample_masks(2, (4, 4), ratio=1.5)
    with pytest.raises(ValueError, match="block_fraction"):
        sample_masks(2, (4, 4), block_fraction=-0.1)


def test_visible_indices_are_the_sorted_unmasked_positions():
    mask = sample_masks(5, (8, 6), generator=_gen(2))
    idx = visible_indices(mask)
    assert idx.shape == (5, 48 - 36) and idx.dtype == torch.long
    for row, m in zip(idx, mask, strict=True):
        assert row.tolist() == (~m).nonzero().flatten().tolist()


def test_visible_indices_refuses_unequal_counts():
    mask = torch.tensor([[True, False, False], [True, True, False]])
    with pytest.raises(ValueError, match="same number of visible patches"):
        visible_indices(mask)


def test_gather_tokens_picks_per_sample_rows():
    x = torch.randn(3, 10, 4, generator=_gen(0))
    idx = torch.tensor([[0, 2, 9], [1, 1, 3], [9, 8, 7]])
    out = gather_tokens(x, idx)
    assert out.shape == (3, 3, 4)
    for b in range(3):
        for j in range(3):
            assert torch.equal(out[b, j], x[b, idx[b, j]])
