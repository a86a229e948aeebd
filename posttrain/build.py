"""Model and optimiser of a post-training run, from its config."""

import torch

from common.training.distributed import wrap_model
from posttrain.backbone_loading import build_backbone
from posttrain.config import PosttrainConfig
from posttrain.layer_decay import layer_decay_groups
from posttrain.task_model import TaskModel
from posttrain.tasks.base import Task


def build_model(cfg: PosttrainConfig, task: Task) -> TaskModel:
    backbone = build_backbone(cfg.backbone)
    head = task.build_head(backbone.dim)
    return TaskModel(backbone, head, with_cls=task.with_cls, freeze=cfg.backbone.freeze)


def build_training(cfg: PosttrainConfig, task: Task, device: torch.device) -> tuple[torch.nn.Module, torch.optim.AdamW]:
    """(the TaskModel to call — DDP-wrapped or FSDP-sharded when distributed —, AdamW with layer-wise LR decay
    groups; each group's lr is `lr_scale` x the schedule's)."""
    core = build_model(cfg, task).to(device)
    units = [] if cfg.backbone.freeze else list(core.backbone.blocks)
    model = wrap_model(core, cfg.distributed.strategy, units, device)
    groups = layer_decay_groups(
        core, core.backbone.depth, weight_decay=cfg.weight_decay, decay=cfg.backbone.layer_decay
    )
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))
    return model, optimizer
