"""Typed config of the score phase (configs/curation/*.yaml fill it; any key is overridable as key.sub=value)."""

from dataclasses import dataclass, field

from omegaconf import MISSING

from common.image_decode import DecodeConfig
from curation.stages.base import StageResources


@dataclass
class StageOptions:
    resources: StageResources = field(default_factory=StageResources)


@dataclass
class StagesConfig:
    decode: StageOptions = field(default_factory=lambda: StageOptions(StageResources(batch_size=64, concurrency=2)))
    phash: StageOptions = field(default_factory=lambda: StageOptions(StageResources(batch_size=64, concurrency=2)))


@dataclass
class ScoreConfig:
    input: list[str] = MISSING  # folders, tars, parquet files: local paths, globs or URIs
    output: str = MISSING  # candidates/, stats.json and config.yaml go here
    address: str | None = None  # a running Ray cluster; None starts a private local one on 127.0.0.1
    num_cpus: int | None = None  # local Ray only
    files_per_shard: int = 1000  # folder inputs: files per input shard (the unit of resume)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
