"""Evaluation of a task model on `val_data` with the task's metric.

Every rank evaluates the whole set: metric states need no merging, and under FSDP the forward passes (collectives)
stay in step across ranks. Validation sets are small next to training; shard it when that stops being true.
"""

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.models.checkpoint import check_state
from common.training.distributed import DistInfo
from posttrain.backbone_loading import weights_file
from posttrain.config import PosttrainConfig
from posttrain.tasks.base import Task

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(cfg: PosttrainConfig, task: Task, model: nn.Module, device: torch.device, info: DistInfo) -> dict:
    dataset = task.dataset(cfg.val_data, train=False)
    metric = task.new_metric(dataset)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=task.collate)
    model.eval()
    for batch in tqdm(loader, desc=f"eval {cfg.task}", disable=None if info.is_main else True, leave=False):
        task.update_metric(metric, model, batch, device)
    results = metric.compute()
    log.info("eval %s on %s: %s", cfg.task, cfg.val_data.root, results)
    return results


def load_task_weights(model: nn.Module, checkpoint: str | Path) -> Path:
    """A post-training run dir (its latest checkpoint) or its model.safetensors → `model` in place."""
    path = weights_file(Path(checkpoint))
    state = load_file(str(path))
    check_state(state, model.state_dict(), path, f"{type(model).__name__} of this task and backbone size")
    model.load_state_dict(state)
    return path
