"""Typed config of the score phase (configs/curation/*.yaml fill it; any key is overridable as key.sub=value)."""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig

from common.config import load_config
from common.image_decode import DecodeConfig
from curation.models.registry import ModelsConfig, models_profile
from curation.stages.aesthetic import AestheticStageConfig
from curation.stages.base import StageResources
from curation.stages.clip_embed import ClipStageConfig
from curation.stages.detect import DetectStageConfig
from curation.stages.head_pose import HeadPoseStageConfig
from curation.stages.nsfw import NsfwStageConfig
from curation.stages.zero_shot import ZeroShotStageConfig


def cheap_resources() -> StageResources:
    return StageResources(num_cpus=1.0, batch_size=64, concurrency=2)


@dataclass
class StageOptions:
    resources: StageResources = field(default_factory=cheap_resources)


@dataclass
class StagesConfig:
    decode: StageOptions = field(default_factory=StageOptions)
    phash: StageOptions = field(default_factory=StageOptions)
    detect: DetectStageConfig = field(default_factory=DetectStageConfig)
    head_pose: HeadPoseStageConfig = field(default_factory=HeadPoseStageConfig)
    clip: ClipStageConfig = field(default_factory=ClipStageConfig)
    aesthetic: AestheticStageConfig = field(default_factory=AestheticStageConfig)
    nsfw: NsfwStageConfig = field(default_factory=NsfwStageConfig)
    zero_shot: ZeroShotStageConfig = field(default_factory=ZeroShotStageConfig)


@dataclass
class ScoreConfig:
    input: list[str] = field(default_factory=list)  # folders, tars, parquet files: local paths, globs or URIs
    output: str = MISSING  # candidates/, stats.json and config.yaml go here
    address: str | None = None  # a running Ray cluster; None starts a private local one on 127.0.0.1
    num_cpus: int | None = None  # local Ray only
    # Where a local Ray head listens. Anything but loopback exposes the dashboard and jobs API (token auth only).
    host: str = "127.0.0.1"
    files_per_shard: int = 1000  # folder inputs: files per input shard (the unit of resume)
    profile: str = "production"  # model set the `models` section starts from: production | tiny
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)


def load_score_config(
    config_path: str | os.PathLike | None = None, overrides: Sequence[str] = (), schema: type = ScoreConfig
) -> DictConfig:
    """Like load_config, with `models` defaulting to the chosen profile; the file and overrides still win.
    `schema` is ScoreConfig or a dataclass extending it (the full curation config)."""
    first = load_config(schema, config_path=config_path, overrides=overrides)
    base = schema(models=models_profile(first.profile))
    return load_config(base, config_path=config_path, overrides=overrides)
