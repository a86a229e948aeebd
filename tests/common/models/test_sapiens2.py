import pytest
import torch

from common.models import create_backbone, visible_token_indices

B, H, W, P = 2, 64, 48, 16
N = (H // P) * (W // P)  # 12 patches on a 4 × 3 grid
PREFIX = 9  # [CLS] + 8 registers


def _model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    # A large LayerScale makes attention matter, so the tests would notice tokens that should not see each other.
    return create_backbone("tiny", **{"layer_scale_init": 0.5, **overrides})


def _images(requires_grad: bool = False) -> torch.Tensor:
    return torch.randn(B, 3, H, W, generator=torch.Generator().manual_seed(1), requires_grad=requires_grad)


def _masks(num_hidden: int = 9) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    masks = torch.zeros(B, N, dtype=torch.bool)
    for b in range(B):
        masks[b, torch.randperm(N, generator=g)[:num_hidden]] = True  # other patches per sample
    return masks


def test_forward_backward_on_a_non_square_input():
    model = _model(num_mha_first=1, num_mha_last=1)  # blocks 1 and 2 use grouped-query attention
    assert model.kv_heads == [4, 2, 2, 4]
    x = _images(requires_grad=True)
    out = model.forward_features(x)
    assert set(out) == {"x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm", "masks", "ids_keep"}
    assert out["x_norm_clstoken"].shape == (B, 64)
    assert out["x_norm_regtokens"].shape == (B, 8, 64)
    assert out["x_norm_patchtokens"].shape == (B, N, 64)
    assert out["x_prenorm"].shape == (B, PREFIX + N, 64)
    assert out["masks"] is None and out["ids_keep"] is None
    loss = sum(out[k].square().mean() for k in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens"))
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(model(x), out["x_norm_clstoken"])


def _visible_only_reference(model, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """All patches at their grid positions, but attention may not read hidden ones: for the visible tokens this is
    the same computation as running on the visible tokens alone. Returns normalised tokens [B, P + N, D]."""
    tokens, rope, _, _ = model.prepare_tokens(x)
    keys_visible = torch.cat((torch.ones(B, PREFIX, dtype=torch.bool), ~masks), dim=1)  # [B, P + N]
    attn_mask = keys_visible[:, None, None, :]  # [B, 1, 1, P + N]
    for block in model.blocks:
        tokens = block(tokens, rope, attn_mask=attn_mask)
    return model.norm(tokens)


def test_masked_forward_equals_attending_to_visible_patches_only():
    model = _model(num_mha_first=1, num_mha_last=1)
    x, masks = _images(), _masks()
    out = model.forward_features(x, masks=masks)
    ids = out["ids_keep"]
    assert ids.shape == (B, 3) and out["x_norm_patchtokens"].shape == (B, 3, 64)
    assert torch.equal(ids, torch.stack([torch.nonzero(~m).squeeze(1) for m in masks]))
    assert out["masks"] is masks
    reference = _visible_only_reference(model, x, masks)
    patches = reference[:, PREFIX:].gather(1, ids[..., None].expand(-1, -1, 64))
    torch.testing.assert_close(out["x_norm_patchtokens"], patches)
    torch.testing.assert_close(out["x_norm_clstoken"], reference[:, 0])
    torch.testing.assert_close(out["x_norm_regtokens"], reference[:, 1:PREFIX])
    # Positions follow the grid: the same visible tokens at other grid cells give other outputs.
    moved = model.forward_features(x, masks=masks.roll(1, dims=1))
    assert not torch.allclose(moved["x_norm_clstoken"], out["x_norm_clstoken"])


def test_hidden_patches_never_reach_any_output():
    model = _model()
    x, masks = _images(requires_grad=True), _masks()
    out = model.forward_features(x, masks=masks)
    (out["x_prenorm"].square().sum() + out["x_norm_patchtokens"].sum()).backward()
    grad = x.grad.unflatten(2, (H // P, P)).unflatten(4, (W // P, P))  # [B, C, h, p, w, p]
    grad = grad.permute(0, 2, 4, 1, 3, 5).flatten(1, 2).flatten(2)  # [B, N, C·p·p]
    assert torch.count_nonzero(grad[masks]) == 0
    assert bool((grad[~masks].abs().sum(-1) > 0).all())


def test_masks_must_keep_equal_counts_and_fit_the_grid():
    model = _model()
    masks = _masks()
    masks[0, (~masks[0]).nonzero()[0]] = True  # sample 0 hides one more patch
    with pytest.raises(ValueError, match="same number of visible patches"):
        model.forward_features(_images(), masks=masks)
    with pytest.raises(ValueError, match=r"\[B, N\] = \[2, 12\]"):
        model.forward_features(_images(), masks=torch.zeros(B, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        visible_token_indices(torch.zeros(B, N))


def test_intermediate_layers():
    model = _model().eval()
    x = _images()
    maps = model.get_intermediate_layers(x, n=2)
    assert len(maps) == 2 and all(m.shape == (B, 64, H // P, W // P) for m in maps)
    flat = model.get_intermediate_layers(x, n=[0, -1], reshape=False, return_class_token=True)
    assert [(p.shape, c.shape) for p, c in flat] == [((B, N, 64), (B, 64))] * 2
    out = model.forward_features(x)
    torch.testing.assert_close(flat[1][0], out["x_norm_patchtokens"])
    torch.testing.assert_close(flat[1][1], out["x_norm_clstoken"])
    torch.testing.assert_close(maps[1], out["x_norm_patchtokens"].transpose(1, 2).reshape(B, 64, H // P, W // P))
    (raw,) = model.get_intermediate_layers(x, n=1, reshape=False, norm=False)
    torch.testing.assert_close(raw, out["x_prenorm"][:, PREFIX:])
    with pytest.raises(ValueError, match="n must be in"):
        model.get_intermediate_layers(x, n=5)
    with pytest.raises(ValueError, match="block indices"):
        model.get_intermediate_layers(x, n=[4])


def test_gradient_checkpointing_changes_nothing_but_memory():
    x = _images()
    plain, ckpt = _model(), _model(grad_checkpointing=True)
    outs, grads = [], []
    for model in (plain, ckpt):
        out = model(x)
        out.square().sum().backward()
        outs.append(out)
        grads.append(model.blocks[0].attn.qkv.weight.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_inference_first_then_training():
    model = _model()
    with torch.inference_mode():
        model(_images())
    model(_images()).sum().backward()  # the cached RoPE tables must not be inference tensors
    assert model.cls_token.grad is not None
