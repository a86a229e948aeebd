"""The backbone of a post-training run: a Sapiens2 of the configured size, with weights from our pretraining
(teacher or student), from a plain backbone file, or from an official Sapiens2 release; told apart by their keys."""

import logging
from pathlib import Path

from safetensors import safe_open

from common.models import Sapiens2, create_backbone, load_backbone, load_official_pretrained
from common.models.checkpoint import CheckpointNotFoundError, check_state, read_safetensors, reading_checkpoint
from common.training.checkpoint import WEIGHTS, latest_checkpoint
from posttrain.config import BackboneConfig

log = logging.getLogger(__name__)

SIZE_KEY = "backbone.name"  # the config key a checkpoint of another size asks to change
BACKBONE_FILES = "a pretraining output dir, its model.safetensors, or an official sapiens2_<size>_pretrain.safetensors"


def build_backbone(cfg: BackboneConfig, image_size: tuple[int, int] | None = None) -> Sapiens2:
    overrides = {"drop_path_rate": cfg.drop_path_rate}
    backbone = create_backbone(cfg.name, **overrides)
    if cfg.checkpoint is None:
        log.warning(
            "backbone %s starts from random weights: set backbone.checkpoint to fine-tune a pretrained one", cfg.name
        )
        return backbone
    path = weights_file(Path(cfg.checkpoint), "backbone.checkpoint", BACKBONE_FILES)
    with reading_checkpoint(path), safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    prefix = f"{cfg.branch}."
    if any(key.startswith(prefix) for key in keys):  # a whole pretrainer: student, teacher, decoder, heads
        state = {k.removeprefix(prefix): v for k, v in read_safetensors(path).items() if k.startswith(prefix)}
        model_name = f"the {cfg.name} backbone ({cfg.branch} of the pretrainer)"
        check_state(state, backbone.state_dict(), path, model_name, size_key=SIZE_KEY)
        backbone.load_state_dict(state)
    elif "register_tokens" in keys:  # ours, saved with common.models.save_backbone
        load_backbone(backbone, path, size_key=SIZE_KEY)
    else:  # the official release names (storage_tokens, wq/wk/wv, ...)
        load_official_pretrained(backbone, path)
    log.info("backbone %s loaded from %s", cfg.name, path)
    return backbone


def weights_file(path: Path, key: str, expected: str) -> Path:
    """A training run dir → its latest checkpoint's weights; a file → itself. `key` names the setting that gave the
    path, `expected` what it should be, for the error when there is nothing to load."""
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointNotFoundError(f"{key}={path} holds no checkpoints/latest: pass {expected}")
        if not (latest / WEIGHTS).is_file():
            raise CheckpointNotFoundError(f"{key}={path}: its latest checkpoint has no {latest / WEIGHTS}")
        return latest / WEIGHTS
    if not path.is_file():
        raise CheckpointNotFoundError(f"{key}={path} does not exist: pass {expected}")
    return path
