"""`humans1b posttrain train | eval | predict` from a config: the task, the model, and where results go."""

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from common.config import save_resolved_config, to_object
from common.training.distributed import DistInfo, init_distributed, pick_device
from posttrain.build import build_model
from posttrain.config import PosttrainConfig
from posttrain.evaluate import evaluate, load_task_weights
from posttrain.predict import image_files, predict_images
from posttrain.tasks import build_task
from posttrain.train import PosttrainRun, train

log = logging.getLogger(__name__)

EVAL_RESULTS = "eval.json"
PREDICTIONS = "predictions"


def run_train(cfg_node: DictConfig, *, resume: bool = False, stop_at: int | None = None) -> PosttrainRun:
    cfg: PosttrainConfig = to_object(cfg_node)
    info = init_distributed(cfg.distributed.backend)
    if info.is_main:
        save_resolved_config(cfg_node, cfg.output)
    return train(cfg, resume=resume, stop_at=stop_at, info=info)


def run_eval(cfg_node: DictConfig, checkpoint: str | None = None) -> dict[str, float]:
    """Evaluate `checkpoint` (default: the run in `output`) on val_data; results also to <output>/eval.json."""
    cfg: PosttrainConfig = to_object(cfg_node)
    task, device = build_task(cfg), pick_device(cfg.device, DistInfo())
    model = build_model(cfg, task).to(device)
    load_task_weights(model, checkpoint or cfg.output, "--checkpoint" if checkpoint else "output")
    results = evaluate(cfg, task, model, device, DistInfo())
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / EVAL_RESULTS).write_text(json.dumps(results, indent=2) + "\n")
    return results


def run_predict(cfg_node: DictConfig, inputs: list[str], checkpoint: str | None = None) -> list[Path]:
    """Predict on image files / folders with `checkpoint` (a post-training run; None: the configured backbone with
    an untrained head, which only shows the plumbing). Files go to <output>/predictions/."""
    cfg: PosttrainConfig = to_object(cfg_node)
    files = image_files(inputs)  # a wrong path fails before a model is built
    task, device = build_task(cfg), pick_device(cfg.device, DistInfo())
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, task).to(device)
    if checkpoint is not None:
        log.info("task weights from %s", load_task_weights(model, checkpoint))
    else:
        log.warning("no post-training checkpoint given: the %s head is untrained", cfg.task)
    return predict_images(task, model, files, Path(cfg.output) / PREDICTIONS, cfg.input_wh, device)
