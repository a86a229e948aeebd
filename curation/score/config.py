"""Typed config of the score phase (configs/curation/*.yaml fill it; any key is overridable as key.sub=value)."""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig

from common.config import ConfigError, bounded, load_config
from common.image_decode import DecodeConfig
from curation.models.registry import ModelsConfig, models_profile
from curation.stages.aesthetic import AestheticStageConfig
from curation.stages.base import StageResources
from curation.stages.clip_embed import ClipStageConfig
from curation.stages.detect import DetectStageConfig
from curation.stages.head_pose import HeadPoseStageConfig
from curation.stages.nsfw import NsfwStageConfig
from curation.stages.resources import valid_pool
from curation.stages.zero_shot import ZeroShotStageConfig


def cheap_resources() -> StageResources:
    return StageResources(num_cpus=1.0, batch_size=64, max_workers=2)


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
    num_cpus: int | None = bounded(None, ge=1)  # local Ray only
    # Where a local Ray head listens. Anything but loopback exposes the dashboard and jobs API (token auth only).
    host: str = "127.0.0.1"
    files_per_shard: int = bounded(1000, ge=1)  # folder inputs: files per input shard (the unit of resume)
    profile: str = "production"  # model set the `models` section starts from: production | tiny
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)


def load_score_config(
    config_path: str | os.PathLike | None = None, overrides: Sequence[str] = (), schema: type = ScoreConfig
) -> DictConfig:
    """Like load_config, with `models` defaulting to the chosen profile; the file and overrides still win.
    `schema` is ScoreConfig or a dataclass extending it (the full curation config)."""
    try:
        first = load_config(schema, config_path=config_path, overrides=overrides)
    except ConfigError as err:
        if ".resources.concurrency'" in str(err):
            raise ConfigError(
                f"{err}. resources.concurrency was replaced: `concurrency: N` is now `min_workers: N, max_workers: N`; "
                "max_workers: auto grows a pool to what the cluster's GPUs allow"
            ) from err
        raise
    base = schema(models=models_profile(first.profile))
    cfg = load_config(base, config_path=config_path, overrides=overrides)
    check_pools(cfg.stages)
    check_output_outside_inputs(cfg.output, list(cfg.input))
    return cfg


def check_pools(stages: DictConfig) -> None:
    """max_workers is a whole number >= min_workers or `auto`: refused at load, naming the key, not in a worker."""
    for name in stages:
        r = stages[name].resources
        if not valid_pool(r.min_workers, r.max_workers):
            raise ConfigError(
                f"stages.{name}.resources.max_workers={r.max_workers!r}: set it to `auto` or a whole number >= "
                f"stages.{name}.resources.min_workers ({r.min_workers})"
            )


_WILDCARD = re.compile(r"[*?\[]")


def check_output_outside_inputs(output: str, inputs: Sequence[str]) -> None:
    """`output` must be a directory (or not exist yet) that is neither an input nor inside one: a re-run would read
    its own candidates, shards and report images as input. Local paths are compared after resolving symlinks (a glob
    by the folder before its first wildcard); URIs as strings."""
    if _is_uri(output):
        out = output.partition("?")[0].rstrip("/")
        roots = [(given, _root(given.partition("?")[0]).rstrip("/")) for given in inputs if _is_uri(given)]
    else:
        out = os.path.realpath(output)
        if os.path.exists(out) and not os.path.isdir(out):
            raise ConfigError(f"output={output} is an existing file, not a directory: set output= to a directory")
        roots = [(given, os.path.realpath(_root(given))) for given in inputs if not _is_uri(given)]
    for given, root in roots:
        if out == root or out.startswith(root.rstrip("/") + "/"):
            where = "is" if out == root else "is inside"
            raise ConfigError(
                f"output={output} {where} the input {given!r}: a re-run would read its own candidates, shards and "
                "report images as input; set output= to a directory outside every input"
            )


def _is_uri(path: str) -> bool:
    return "://" in path


def _root(given: str) -> str:
    """The folder a glob lists from (the path before its first wildcard); a path without wildcards itself."""
    parts = given.split("/")
    first = next((i for i, part in enumerate(parts) if _WILDCARD.search(part)), len(parts))
    return "/".join(parts[:first]) or ("/" if given.startswith("/") else ".")
