"""Block, SwiGLU, RMSNorm, LayerScale, DropPath and PatchEmbed against written-out references."""

import pytest
import torch
import torch.nn.functional as F

from common.layers import Block, DropPath, LayerScale, PatchEmbed, RMSNorm, SwiGLUFFN
from common.layers.rope import RopePositionEmbedding

DIM = 32


def test_swiglu_matches_its_formula_with_a_4x_hidden():
    torch.manual_seed(0)
    ffn = SwiGLUFFN(DIM)
    assert ffn.w3.in_features == 4 * DIM
    x = torch.randn(2, 5, DIM)
    w_gate, w_value = ffn.w12.weight.chunk(2)
    b_gate, b_value = ffn.w12.bias.chunk(2)
    hidden = F.silu(x @ w_gate.T + b_gate) * (x @ w_value.T + b_value)
    torch.testing.assert_close(ffn(x), hidden @ ffn.w3.weight.T + ffn.w3.bias)


def test_rms_norm_matches_its_formula_with_a_fixed_epsilon():
    torch.manual_seed(0)
    norm = RMSNorm(DIM)
    assert norm.eps == 1e-6
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, DIM) * 1e-3  # small inputs, where the epsilon matters
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_layer_scale_starts_at_its_init_value():
    assert torch.equal(LayerScale(4).gamma, torch.full((4,), 1e-5))
    scale = LayerScale(4, init_value=0.5)
    torch.testing.assert_close(scale(torch.ones(2, 4)), torch.full((2, 4), 0.5))


def test_drop_path_drops_whole_samples_only_in_training():
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 4)
    out = drop(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # dropped or rescaled by 1 / keep
    assert bool((per_sample == per_sample[:, :1]).all())  # one decision per sample
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(1.0)


def test_block_is_pre_norm_with_layer_scale_on_the_attention_branch_only():
    torch.manual_seed(0)
    block = Block(DIM, num_heads=4, num_kv_heads=2, layer_scale_init=0.0)
    x = torch.randn(2, 2 + 6, DIM)
    rope = RopePositionEmbedding(DIM // 4)(2, 3)
    # A zero LayerScale silences attention; the FFN branch has no gain of its own.
    torch.testing.assert_close(block(x, rope=rope), x + block.mlp(block.norm2(x)))
    with torch.no_grad():
        block.ls1.gamma.fill_(1.0)
    h = x + block.attn(block.norm1(x), rope=rope)
    torch.testing.assert_close(block(x, rope=rope), h + block.mlp(block.norm2(h)))


def test_patch_embed_returns_raster_order_tokens_and_the_grid():
    torch.manual_seed(0)
    embed = PatchEmbed(DIM, patch_size=16)
    x = torch.randn(2, 3, 64, 48)
    tokens, grid = embed(x)
    assert grid == (4, 3) and tokens.shape == (2, 12, DIM)
    # Token i·w + j is patch (i, j).
    patch = x[:, :, 16 * 2 : 16 * 3, 16 * 1 : 16 * 2]
    expected = (patch.flatten(1) @ embed.proj.weight.flatten(1).T) + embed.proj.bias
    torch.testing.assert_close(tokens[:, 2 * 3 + 1], expected)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        embed(torch.randn(1, 3, 64, 40))
