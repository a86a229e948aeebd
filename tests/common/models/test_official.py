"""Official-layout checkpoints built by hand from our tiny model (no network, no real checkpoint)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from common.models import CheckpointMismatchError, create_backbone, create_backbone_4k
from common.models.official import load_official_pretrained, official_layout


def _tiny(seed: int, **overrides):
    torch.manual_seed(seed)
    # One GQA block (kv heads 2 of 4) so the wq / wk / wv split sizes differ per block.
    return create_backbone("tiny", **{"num_mha_first": 1, "num_mha_last": 2, "layer_scale_init": 0.3, **overrides})


def _official_state(model) -> dict[str, torch.Tensor]:
    """Our weights under the release's names, written out key by key (independent of `official_layout`)."""
    ours = {key: value.detach().clone() for key, value in model.state_dict().items()}
    state = {
        "patch_embed.projection.weight": ours.pop("patch_embed.proj.weight"),
        "patch_embed.projection.bias": ours.pop("patch_embed.proj.bias"),
        "cls_token": ours.pop("cls_token"),
        "storage_tokens": ours.pop("register_tokens"),
        "ln1.weight": ours.pop("norm.weight"),
        # The release keeps its RoPE periods as a bf16 buffer computed in bf16.
        "rope_embed.periods": 100.0 ** (2 * torch.arange(4, dtype=torch.bfloat16) / 8),  # head dim 16
    }
    for i, block in enumerate(model.blocks):
        p = f"blocks.{i}."
        q_rows, kv_rows = 64, block.attn.num_kv_heads * 16
        for kind in ("weight", "bias"):
            qkv = ours.pop(f"{p}attn.qkv.{kind}")
            assert qkv.shape[0] == q_rows + 2 * kv_rows
            state[f"{p}attn.wq.{kind}"] = qkv[:q_rows].clone()
            state[f"{p}attn.wk.{kind}"] = qkv[q_rows : q_rows + kv_rows].clone()
            state[f"{p}attn.wv.{kind}"] = qkv[q_rows + kv_rows :].clone()
            state[f"{p}attn.proj.{kind}"] = ours.pop(f"{p}attn.proj.{kind}")
            state[f"{p}ffn.w12.{kind}"] = ours.pop(f"{p}mlp.w12.{kind}")
            state[f"{p}ffn.w3.{kind}"] = ours.pop(f"{p}mlp.w3.{kind}")
        state[f"{p}ln1.weight"] = ours.pop(f"{p}norm1.weight")
        state[f"{p}ln2.weight"] = ours.pop(f"{p}norm2.weight")
        state[f"{p}attn.q_norm.weight"] = ours.pop(f"{p}attn.q_norm.weight")
        state[f"{p}attn.k_norm.weight"] = ours.pop(f"{p}attn.k_norm.weight")
        state[f"{p}attn.gamma.weight"] = ours.pop(f"{p}ls1.gamma")
    assert not ours, f"test mapping misses {list(ours)}"
    return state


def _save(state: dict[str, torch.Tensor], tmp_path: Path) -> Path:
    path = tmp_path / "sapiens2_tiny_pretrain.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_official_layout_loads_to_identical_outputs(tmp_path: Path):
    source = _tiny(0).eval()
    assert source.kv_heads == [4, 2, 4, 4]
    path = _save(_official_state(source), tmp_path)
    target = _tiny(1).eval()
    x = torch.randn(2, 3, 64, 48)
    assert not torch.equal(target(x), source(x))
    load_official_pretrained(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert torch.equal(target.forward_features(x)["x_prenorm"], source.forward_features(x)["x_prenorm"])


def test_bf16_checkpoint_loads_into_a_float32_model(tmp_path: Path):
    source = _tiny(0)
    state = {k: v.to(torch.bfloat16) for k, v in _official_state(source).items()}
    target = _tiny(1)
    load_official_pretrained(target, _save(state, tmp_path))
    assert target.cls_token.dtype == torch.float32
    assert torch.equal(target.cls_token, source.cls_token.to(torch.bfloat16).float())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.update({"blocks.1.attn.key.weight": s.pop("blocks.1.attn.wk.weight")}),
            r"missing keys: blocks\.1\.attn\.wk\.weight; 1 unexpected keys: blocks\.1\.attn\.key\.weight",
        ),
        (lambda s: s.pop("storage_tokens"), r"1 missing keys: storage_tokens"),
        (
            lambda s: s.update({"blocks.1.attn.wk.weight": torch.zeros(64, 64)}),
            r"blocks\.1\.attn\.wk\.weight: checkpoint \[64, 64\], expected \[32, 64\]",
        ),
        (
            lambda s: s.update({"tokenizer.w_cls": torch.zeros(1, 1, 64)}),
            r"unexpected keys: tokenizer\.w_cls .*4K window stage",
        ),
        (lambda s: s.update({"rope_embed.periods": 10000.0 ** (torch.arange(4.0) / 4)}), r"another RoPE base"),
    ],
    ids=["renamed", "missing", "wrong-shape", "4k-tokenizer", "rope-base"],
)
def test_a_mismatch_names_the_official_key(tmp_path: Path, edit, message: str):
    state = _official_state(_tiny(0))
    edit(state)
    target = _tiny(1)
    before = target.cls_token.detach().clone()
    with pytest.raises(CheckpointMismatchError, match=message):
        load_official_pretrained(target, _save(state, tmp_path))
    assert torch.equal(target.cls_token, before)  # nothing is half-loaded


def test_a_model_of_another_size_is_refused(tmp_path: Path):
    path = _save(_official_state(_tiny(0)), tmp_path)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys: blocks\.3\..*create_backbone"):
        load_official_pretrained(_tiny(1, depth=3), path)


def test_only_existing_safetensors_files_and_plain_models(tmp_path: Path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        load_official_pretrained(_tiny(0), tmp_path / "sapiens2_1b_pretrain.pth")
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        load_official_pretrained(_tiny(0), tmp_path / "nope.safetensors")
    path = _save(_official_state(_tiny(0)), tmp_path)
    with pytest.raises(ValueError, match=r"summary_token.*no counterpart"):
        load_official_pretrained(create_backbone_4k("tiny"), path)


def test_layout_of_a_released_size():
    with torch.device("meta"):
        layout = official_layout(create_backbone("1b"))
    # 40 blocks × 17 tensors + patch embed (2) + cls + storage tokens + final norm
    assert len(layout) == 40 * 17 + 5
    assert layout["blocks.8.attn.wk.weight"].shape == (768, 1536)  # a GQA block: 12 of 24 heads
    assert layout["blocks.7.attn.wv.bias"].shape == (1536,)  # an MHA block
    assert layout["blocks.8.attn.wv.weight"].rows == slice(2304, 3072)
    assert layout["storage_tokens"].shape == (1, 8, 1536)
    assert layout["ln1.weight"].ours == "norm.weight"
