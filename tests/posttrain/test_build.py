"""Layer-wise LR decay groups and the three kinds of backbone weights a post-training run starts from."""

import importlib.util
from pathlib import Path

import pytest
import torch

from common.models import create_backbone, save_backbone
from posttrain.backbone_loading import build_backbone
from posttrain.config import BackboneConfig
from posttrain.heads import SegmentationHead
from posttrain.layer_decay import layer_decay_groups, layer_id
from posttrain.task_model import TaskModel

TESTS = Path(__file__).resolve().parents[1]


def test_layer_ids_and_lr_scales_follow_the_depth():
    model = TaskModel(create_backbone("tiny"), SegmentationHead(64, deconv_channels=(8, 8), conv_channels=(8,)))
    depth = model.backbone.depth  # 4
    assert [layer_id(n, depth) for n in ("backbone.cls_token", "backbone.patch_embed.proj.weight")] == [0, 0]
    assert layer_id("backbone.blocks.2.attn.qkv.weight", depth) == 3
    assert layer_id("backbone.norm.weight", depth) == layer_id("head.classifier.weight", depth) == 5
    groups = layer_decay_groups(model, depth, weight_decay=0.1, decay=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    for name, param in model.named_parameters():
        group = by_param[id(param)]
        assert group["lr_scale"] == 0.5 ** (5 - layer_id(name, depth)), name
        assert group["weight_decay"] == (
            0.1 if param.ndim >= 2 and not name.endswith(("cls_token", "register_tokens")) else 0.0
        ), name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_a_frozen_backbone_is_left_out_of_the_optimizer():
    model = TaskModel(
        create_backbone("tiny"), SegmentationHead(64, deconv_channels=(8,), conv_channels=()), freeze=True
    )
    groups = layer_decay_groups(model, 4, weight_decay=0.1, decay=0.5)
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for g in groups for p in g["params"]} == head
    model.train()
    assert not model.backbone.training and model.head.training


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_backbone_weights_from_a_backbone_file_or_an_official_release(tmp_path):
    torch.manual_seed(3)
    source = create_backbone("tiny", layer_scale_init=0.3)
    save_backbone(source, tmp_path / "ours.safetensors")
    assert _same_weights(
        build_backbone(BackboneConfig(name="tiny", checkpoint=str(tmp_path / "ours.safetensors"))), source
    )

    spec = importlib.util.spec_from_file_location("official_test", TESTS / "common/models/test_official.py")
    official = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official)
    path = official._save(official._official_state(source), tmp_path)
    assert _same_weights(build_backbone(BackboneConfig(name="tiny", checkpoint=str(path))), source)

    with pytest.raises(FileNotFoundError, match="no checkpoints/latest"):
        build_backbone(BackboneConfig(name="tiny", checkpoint=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone(BackboneConfig(name="tiny", checkpoint=str(tmp_path / "missing.safetensors")))
