"""The whole curation config: the score phase's keys plus the `select`, `write` and `report` sections.

Every `humans1b curate` phase loads this one schema, so one YAML file drives score, select, write and report.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf

from common.config import bounded, config_hash
from curation.report import ReportConfig
from curation.score.config import ScoreConfig, load_score_config
from curation.select.config import SelectConfig
from curation.write.config import WriteConfig

# Where and how fast a run goes, not what it produces: left out of the manifest's config hash.
RUNTIME_KEYS = ("address", "num_cpus", "host", "input", "output")


@dataclass
class CurateConfig(ScoreConfig):
    # k-means, SemDeDup, sampling and report thumbnails; same seed + same inputs = same shards
    seed: int = bounded(0, ge=0)
    select: SelectConfig = field(default_factory=SelectConfig)
    write: WriteConfig = field(default_factory=WriteConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def load_curate_config(config_path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    return load_score_config(config_path, overrides, schema=CurateConfig)


def output_hash(cfg: DictConfig) -> str:
    """Fingerprint of everything that shapes the output; the same for a laptop run and a cluster run."""
    content = OmegaConf.masked_copy(cfg, [k for k in cfg if k not in RUNTIME_KEYS])
    return config_hash(content)
