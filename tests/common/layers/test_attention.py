import math

import pytest
import torch

from common.layers.attention import Attention
from common.layers.rope import RopePositionEmbedding

DIM, HEADS, PREFIX, GRID = 32, 4, 2, (3, 4)


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rotate_as_complex(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (j, j + Dh/2) as complex numbers by `angles` [N, Dh/2]."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half], x[..., half:]) * torch.polar(torch.ones_like(angles), angles)
    return torch.cat((z.real, z.imag), dim=-1)


def _reference(attn: Attention, x: torch.Tensor, grid: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(QKᵀ/√d)V written out: own projection split, RMS q/k norm, complex RoPE, explicit kv expansion."""
    B, N, D = x.shape
    H, Hkv, Dh = attn.num_heads, attn.num_kv_heads, attn.head_dim
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q = qkv[..., :D].reshape(B, N, H, Dh).permute(0, 2, 1, 3)
    k = qkv[..., D : D + Hkv * Dh].reshape(B, N, Hkv, Dh).permute(0, 2, 1, 3)
    v = qkv[..., D + Hkv * Dh :].reshape(B, N, Hkv, Dh).permute(0, 2, 1, 3)
    q, k = _rms(q, attn.q_norm.weight), _rms(k, attn.k_norm.weight)
    # Patch (i, j) sits at (2(i+½)/h − 1, 2(j+½)/w − 1); pair p < Dh/4 turns with the row, the rest with the column.
    h, w = grid
    quarter = Dh // 4
    periods = 100.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows = torch.tensor([2 * (i + 0.5) / h - 1 for i in range(h) for _ in range(w)], dtype=torch.float64)
    cols = torch.tensor([2 * (j + 0.5) / w - 1 for _ in range(h) for j in range(w)], dtype=torch.float64)
    angles = 2 * math.pi * torch.cat((rows[:, None] / periods, cols[:, None] / periods), dim=1)  # [h·w, Dh/2]
    angles = torch.cat((torch.zeros(N - h * w, Dh // 2, dtype=torch.float64), angles)).to(x.dtype)
    q, k = _rotate_as_complex(q, angles), _rotate_as_complex(k, angles)
    k = k.repeat_interleave(H // Hkv, dim=1)  # query head i reads kv head i // (H / Hkv)
    v = v.repeat_interleave(H // Hkv, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(Dh)  # [B, H, N, N]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(dim=-1) @ v  # [B, H, N, Dh]
    return out.permute(0, 2, 1, 3).reshape(B, N, D) @ attn.proj.weight.T + attn.proj.bias


def _randomise(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if p.ndim == 1 and p.shape[0] == DIM // HEADS else 0.0))


@pytest.mark.parametrize("num_kv_heads", [HEADS, HEADS // 2, 1])
@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_matches_an_explicit_softmax_reference(num_kv_heads: int, with_mask: bool):
    torch.manual_seed(0)
    attn = Attention(DIM, HEADS, num_kv_heads=num_kv_heads).double()
    _randomise(attn)
    n = PREFIX + GRID[0] * GRID[1]
    x = torch.randn(2, n, DIM, dtype=torch.float64)
    rope = RopePositionEmbedding(DIM // HEADS)(*GRID, dtype=torch.float64)
    mask = torch.rand(2, 1, n, n) > 0.3 if with_mask else None
    if mask is not None:
        mask[..., 0] = True  # every query keeps at least one key
    torch.testing.assert_close(attn(x, rope=rope, attn_mask=mask), _reference(attn, x, GRID, mask))


def test_kv_heads_equal_to_heads_is_plain_multi_head_attention():
    torch.manual_seed(0)
    mha, gqa = Attention(DIM, HEADS), Attention(DIM, HEADS, num_kv_heads=HEADS)
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(2, 7, DIM)
    torch.testing.assert_close(gqa(x), mha(x), rtol=0, atol=0)


def test_grouped_query_equals_multi_head_with_repeated_kv_weights():
    torch.manual_seed(0)
    gqa = Attention(DIM, HEADS, num_kv_heads=HEADS // 2)
    _randomise(gqa)
    mha = Attention(DIM, HEADS)
    dh, group = DIM // HEADS, 2
    state = gqa.state_dict()
    q_w, k_w, v_w = state["qkv.weight"].split((DIM, DIM // group, DIM // group))
    q_b, k_b, v_b = state["qkv.bias"].split((DIM, DIM // group, DIM // group))

    def repeat_heads(t: torch.Tensor) -> torch.Tensor:  # [Hkv·Dh, …] → [H·Dh, …], each kv head copied `group` times
        return t.unflatten(0, (-1, dh)).repeat_interleave(group, dim=0).flatten(0, 1)

    state["qkv.weight"] = torch.cat((q_w, repeat_heads(k_w), repeat_heads(v_w)))
    state["qkv.bias"] = torch.cat((q_b, repeat_heads(k_b), repeat_heads(v_b)))
    mha.load_state_dict(state)
    x = torch.randn(2, PREFIX + 12, DIM)
    rope = RopePositionEmbedding(dh)(*GRID)
    torch.testing.assert_close(gqa(x, rope=rope), mha(x, rope=rope))
    assert sum(p.numel() for p in gqa.parameters()) < sum(p.numel() for p in mha.parameters())


def test_invalid_head_counts_are_rejected():
    with pytest.raises(ValueError, match="must divide"):
        Attention(DIM, HEADS, num_kv_heads=3)
    with pytest.raises(ValueError, match="not divisible"):
        Attention(30, HEADS)
