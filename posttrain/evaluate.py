"""Evaluation of a task model on `val_data` with the task's metric.

Every rank evaluates the whole set: metric states need no merging, and under FSDP the forward passes (collectives)
stay in step across ranks. Validation sets are small next to training; shard it when that stops being true.
"""

import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.models.checkpoint import check_state, read_safetensors
from common.training.distributed import DistInfo
from posttrain.backbone_loading import SIZE_KEY, weights_file
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


def load_task_weights(model: nn.Module, checkpoint: str | Path, key: str = "--checkpoint") -> Path:
    """A post-training run dir (its latest checkpoint) or its model.safetensors → `model` in place. `key`: where
    the path came from, for the error when it holds nothing to load."""
    path = weights_file(Path(checkpoint), key, "a post-training output dir or its model.safetensors")
    state = read_safetensors(path)
    model_name = f"{type(model).__name__} of this task and backbone size"
    check_state(state, model.state_dict(), path, model_name, size_key=SIZE_KEY)
    model.load_state_dict(state)
    return path
