"""Typed config of a pretraining run (configs/pretrain/*.yaml fill it; any key is overridable as key.sub=value)."""

from dataclasses import dataclass, field

from omegaconf import MISSING

from common.config import bounded
from pretrain.data.views import MultiCropConfig
from pretrain.ray_train import RayTrainConfig
from pretrain.train import LoopConfig


@dataclass
class PretrainConfig(LoopConfig):
    shards: list[str] = field(default_factory=list)  # curation output dirs (their manifest.json) or shard globs
    output: str = MISSING  # checkpoints/, metrics.jsonl, tensorboard/ and config.yaml go here
    batch_size: int = bounded(8, ge=1)  # per process
    num_workers: int = bounded(2, ge=0)  # DataLoader workers: decode + multi-crop run there
    shuffle_buffer: int = bounded(1000, ge=0)  # samples; 0 or 1: no shuffle buffer
    crops: MultiCropConfig = field(default_factory=MultiCropConfig)
    ray_train: RayTrainConfig = field(default_factory=RayTrainConfig)  # `humans1b pretrain --ray`
