"""Every size in the table, timm style: on the meta device (no memory), against the published parameter counts."""

import pytest
import torch

from common.models import SIZES, Sapiens2, create_backbone

PUBLISHED = [name for name, size in SIZES.items() if size.published_params_b is not None]


@pytest.mark.parametrize("name", PUBLISHED)
def test_parameter_count_matches_the_published_one(name: str):
    with torch.device("meta"):
        model = create_backbone(name)
    count = sum(p.numel() for p in model.parameters())
    published = SIZES[name].published_params_b * 1e9
    assert abs(count - published) / published < 0.01, f"{name}: {count / 1e9:.4f} B vs published {published / 1e9} B"


@pytest.mark.parametrize("name", list(SIZES))
def test_every_size_builds_and_infers_shapes(name: str):
    size = SIZES[name]
    with torch.device("meta"):
        model = create_backbone(name)
        out = model.forward_features(torch.empty(1, 3, 64, 48))
    assert out["x_norm_patchtokens"].shape == (1, 12, size.dim)
    # Multi-head attention in the first and last 8 blocks, grouped-query (kv heads = heads / 2) between.
    expected = [size.num_heads if i < 8 or i >= size.depth - 8 else size.num_heads // 2 for i in range(size.depth)]
    assert [block.attn.num_kv_heads for block in model.blocks] == expected


def test_unknown_size_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"known sizes: tiny, 0\.1b, 0\.4b"):
        create_backbone("2b")


def test_overrides_reach_the_model():
    model = create_backbone("tiny", img_size=(256, 192), drop_path_rate=0.3, layer_scale_init=0.1)
    assert isinstance(model, Sapiens2)
    assert model.img_size == (256, 192)
    assert [b.drop_path.drop_prob for b in model.blocks] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert torch.equal(model.blocks[0].ls1.gamma, torch.full((64,), 0.1))
    with pytest.raises(TypeError, match="no_such_option"):
        create_backbone("tiny", no_such_option=1)
