import pytest
import torch

from common.models import SIZES, Sapiens2Hierarchical, create_backbone, create_backbone_4k

WIN_PX = 64  # a 4 × 4 window of 16 px patches
D = 64  # tiny


def _model(**overrides) -> Sapiens2Hierarchical:
    torch.manual_seed(0)
    # A large LayerScale makes global attention matter, so the tests would notice tokens that should not interact.
    return create_backbone_4k("tiny", **{"layer_scale_init": 0.5, **overrides})


def _images(b: int, h: int, w: int, requires_grad: bool = False) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(1), requires_grad=requires_grad)


def _per_window(pixels: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, nW, C·64·64], windows in raster order."""
    b, c, h, w = pixels.shape
    x = pixels.view(b, c, h // WIN_PX, WIN_PX, w // WIN_PX, WIN_PX).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // WIN_PX) * (w // WIN_PX), -1)


def test_shapes_and_finite_forward_backward():
    model = _model()
    assert model.local_depth == SIZES["tiny"].local_depth and model.img_size == (4096, 3072)
    x = _images(2, 128, 64, requires_grad=True)  # 8 × 4 patches → 2 × 1 windows
    out = model.forward_features(x)
    assert out["x_norm_clstoken"].shape == (2, D)
    assert out["x_norm_regtokens"].shape == (2, 8, D)
    assert out["x_norm_patchtokens"].shape == (2, 2, D)
    loss = sum(out[k].square().mean() for k in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens"))
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert torch.isfinite(x.grad).all()
    (fmap,) = model.get_intermediate_layers(x.detach(), n=1)
    assert fmap.shape == (2, D, 2, 1)  # heads see the window grid


def test_a_masked_window_never_influences_a_visible_output():
    model = _model()
    x = _images(2, 256, 128, requires_grad=True)  # 4 × 2 windows
    masks = torch.zeros(2, 8, dtype=torch.bool)
    masks[0, [0, 3, 5, 6]] = True
    masks[1, [1, 2, 4, 7]] = True
    out = model.forward_features(x, masks=masks)
    assert out["x_norm_patchtokens"].shape == (2, 4, D)
    assert torch.equal(out["ids_keep"], torch.tensor([[1, 2, 4, 7], [0, 3, 5, 6]]))
    # Every output the encoder gives (CLS, registers, visible window tokens), through a random readout.
    readout = torch.randn_like(out["x_prenorm"])
    ((out["x_prenorm"] * readout).sum() + out["x_norm_patchtokens"].square().sum()).backward()
    grad = _per_window(x.grad)  # [B, nW, C·64·64]
    assert torch.count_nonzero(grad[masks]) == 0
    assert bool((grad[~masks].abs().sum(-1) > 0).all())


def test_the_local_stage_is_window_local():
    model = _model().eval()
    x = _images(1, 256, 128)
    changed = x.clone()
    changed[..., 64:128, 64:128] += 1.0  # window (1, 1) = index 3 of the 4 × 2 window grid
    with torch.no_grad():
        before, grid = model.embed_patches(x)
        after, _ = model.embed_patches(changed)
    assert grid == (4, 2) and before.shape == (1, 8, D)
    differs = (before - after).abs().amax(-1)[0] > 0  # [nW]
    assert differs.tolist() == [i == 3 for i in range(8)]


def test_size_must_fit_whole_windows():
    with pytest.raises(ValueError, match="multiple of 64 px"):
        _model().forward_features(_images(1, 96, 64))


@pytest.mark.parametrize("name", ["1b", "tiny"])
def test_parameter_count_is_the_base_plus_the_local_stage(name: str):
    with torch.device("meta"):
        base = create_backbone(name)
        model = create_backbone_4k(name)
    count = sum(p.numel() for p in model.parameters())
    base_count = sum(p.numel() for p in base.parameters())
    block = sum(p.numel() for p in model.local_blocks[0].parameters())
    dim = SIZES[name].dim
    # per local block: qkv 3D² + 3D, proj D² + D, SwiGLU 12D² + 9D, two RMSNorms, QK-norms, one LayerScale
    assert block == 16 * dim * dim + 13 * dim + 2 * dim + 2 * (dim // SIZES[name].num_heads) + dim
    assert count == base_count + SIZES[name].local_depth * block + dim  # + the summary token
    local = count - base_count
    print(f"{name}-4k: {count / 1e9:.4f} B = base {base_count / 1e9:.4f} B + local stage {local / 1e9:.4f} B")


def test_overrides_and_unknown_size():
    model = create_backbone_4k("tiny", local_depth=3, img_size=(1024, 768))
    assert len(model.local_blocks) == 3 and model.img_size == (1024, 768)
    with pytest.raises(ValueError, match="known sizes"):
        create_backbone_4k("2b")
    with pytest.raises(ValueError, match="local_depth"):
        create_backbone_4k("tiny", local_depth=0)


def test_gradient_checkpointing_covers_the_local_stage():
    x = _images(1, 128, 64)
    grads = []
    for ckpt in (False, True):
        model = _model(grad_checkpointing=ckpt)
        model(x).square().sum().backward()
        grads.append(model.local_blocks[0].attn.qkv.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
