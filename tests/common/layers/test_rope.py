import math

import pytest
import torch

from common.layers.rope import RopePositionEmbedding, apply_rope, patch_coords

HEAD_DIM = 16


def _score(rope: RopePositionEmbedding, q: torch.Tensor, k: torch.Tensor, pos_q, pos_k) -> torch.Tensor:
    """q·k after rotating q at pos_q and k at pos_k (coordinates (row, col))."""
    sin, cos = rope.sincos(torch.tensor([pos_q, pos_k], dtype=torch.float64))  # [2, Dh]
    pair = torch.stack((q, k))[None, None]  # [1, 1, 2, Dh]
    rotated, _ = apply_rope(pair, pair, sin, cos)
    return rotated[0, 0, 0] @ rotated[0, 0, 1]


def test_scores_depend_only_on_the_position_difference():
    torch.manual_seed(0)
    rope = RopePositionEmbedding(HEAD_DIM)
    q, k = torch.randn(2, HEAD_DIM, dtype=torch.float64)
    base = _score(rope, q, k, (0.1, -0.4), (-0.3, 0.25))
    for offset in [(0.5, 0.0), (0.0, -0.7), (-1.3, 0.9)]:
        shifted = _score(rope, q, k, (0.1 + offset[0], -0.4 + offset[1]), (-0.3 + offset[0], 0.25 + offset[1]))
        torch.testing.assert_close(shifted, base)
    # …and does depend on it.
    assert not torch.isclose(_score(rope, q, k, (0.1, -0.4), (0.2, 0.25)), base)


def test_grid_tables_are_relative_along_both_axes():
    torch.manual_seed(0)
    h, w = 5, 7
    rope = RopePositionEmbedding(HEAD_DIM)
    sin, cos = rope(h, w)
    x = torch.randn(1, 1, 1, HEAD_DIM).expand(1, 1, h * w, HEAD_DIM)
    rotated, _ = apply_rope(x, x, sin, cos)  # the same vector placed in every cell
    scores = (rotated[0, 0] @ rotated[0, 0].T).view(h, w, h, w)
    # Cell pairs with the same (Δrow, Δcol) score alike.
    torch.testing.assert_close(scores[0, 0, 2, 3], scores[2, 3, 4, 6])
    torch.testing.assert_close(scores[1, 4, 0, 2], scores[4, 6, 3, 4])


def test_half_the_pairs_follow_the_row_half_the_column():
    rope = RopePositionEmbedding(HEAD_DIM)
    _, cos = rope.sincos(torch.tensor([[0.3, -0.2], [0.3, 0.6], [-0.5, -0.2]]))
    quarter = HEAD_DIM // 4
    row_channels = torch.cat((torch.arange(quarter), torch.arange(2 * quarter, 3 * quarter)))
    col_channels = torch.cat((torch.arange(quarter, 2 * quarter), torch.arange(3 * quarter, 4 * quarter)))
    # Same row, other column: the row channels keep their angle; same column, other row: the column channels do.
    torch.testing.assert_close(cos[0, row_channels], cos[1, row_channels])
    assert not torch.allclose(cos[0, col_channels], cos[1, col_channels])
    torch.testing.assert_close(cos[0, col_channels], cos[2, col_channels])
    assert not torch.allclose(cos[0, row_channels], cos[2, row_channels])
    # Shortest period 1, longest just under the base.
    torch.testing.assert_close(rope.periods()[[0, -1]], torch.tensor([1.0, 100.0 ** (3 / 4)]))


def test_patch_coords_are_cell_centres_in_raster_order():
    coords = patch_coords(2, 4)
    assert coords.shape == (8, 2)
    torch.testing.assert_close(coords[0], torch.tensor([-0.5, -0.75]))
    torch.testing.assert_close(coords[1], torch.tensor([-0.5, -0.25]))  # column moves first
    torch.testing.assert_close(coords[-1], torch.tensor([0.5, 0.75]))


def test_prefix_tokens_stay_unrotated_and_norms_are_kept():
    torch.manual_seed(0)
    prefix, h, w = 3, 2, 3
    rope = RopePositionEmbedding(HEAD_DIM)
    sin, cos = rope(h, w)
    q = torch.randn(2, 4, prefix + h * w, HEAD_DIM)
    k = torch.randn(2, 2, prefix + h * w, HEAD_DIM)
    q_rot, k_rot = apply_rope(q, k, sin, cos)
    torch.testing.assert_close(q_rot[:, :, :prefix], q[:, :, :prefix], rtol=0, atol=0)
    torch.testing.assert_close(k_rot[:, :, :prefix], k[:, :, :prefix], rtol=0, atol=0)
    patches_only, _ = apply_rope(q[:, :, prefix:], k[:, :, prefix:], sin, cos)
    torch.testing.assert_close(q_rot[:, :, prefix:], patches_only)
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))  # a rotation


def test_per_sample_tables_match_a_loop_over_samples():
    torch.manual_seed(0)
    rope = RopePositionEmbedding(HEAD_DIM)
    sin, cos = rope(4, 4)
    ids = torch.stack([torch.randperm(16)[:5].sort().values for _ in range(3)])  # [B, 5]
    q, k = torch.randn(3, 4, 6, HEAD_DIM), torch.randn(3, 2, 6, HEAD_DIM)
    q_rot, k_rot = apply_rope(q, k, sin[ids], cos[ids])
    for b in range(3):
        q_ref, k_ref = apply_rope(q[b : b + 1], k[b : b + 1], sin[ids[b]], cos[ids[b]])
        torch.testing.assert_close(q_rot[b : b + 1], q_ref)
        torch.testing.assert_close(k_rot[b : b + 1], k_ref)


def test_tables_are_cached_per_grid_and_dtype():
    rope = RopePositionEmbedding(HEAD_DIM)
    assert rope(3, 5)[0] is rope(3, 5)[0]
    assert rope(3, 5)[0] is not rope(5, 3)[0]
    assert rope(3, 5, dtype=torch.bfloat16)[0].dtype == torch.bfloat16


def test_tables_first_built_in_inference_mode_still_train():
    rope = RopePositionEmbedding(HEAD_DIM)
    with torch.inference_mode():
        rope(2, 2)
    q = torch.randn(1, 1, 4, HEAD_DIM, requires_grad=True)
    q_rot, _ = apply_rope(q, q, *rope(2, 2))
    q_rot.sum().backward()
    assert q.grad is not None


def test_head_dim_must_split_into_two_axes_of_pairs():
    with pytest.raises(ValueError, match="divisible by 4"):
        RopePositionEmbedding(18)


def test_angles_match_the_documented_formula():
    rope = RopePositionEmbedding(HEAD_DIM, base=100.0)
    sin, _ = rope.sincos(torch.tensor([[0.25, -0.5]]))
    quarter = HEAD_DIM // 4
    for j in range(quarter):
        period = 100.0 ** (j / quarter)
        assert sin[0, j].item() == pytest.approx(math.sin(2 * math.pi * 0.25 / period), abs=1e-6)
        assert sin[0, quarter + j].item() == pytest.approx(math.sin(2 * math.pi * -0.5 / period), abs=1e-6)
