"""The end-to-end demo on the sample corpus: every curation phase that exists, in order, on one local Ray.

Today: build the sample corpus, then the score phase with the tiny models (filters in audit mode).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from common.config import save_resolved_config, to_object
from common.ray_bootstrap import ray_session
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.score.config import load_score_config
from curation.score.runner import ScoreRun, run_score

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    output: str = ".demo"
    address: str | None = None  # a running Ray cluster; None starts a private local one
    num_cpus: int | None = None
    corpus: SampleCorpusConfig = field(default_factory=SampleCorpusConfig)
    score_config: str = "configs/curation/demo.yaml"
    score_overrides: list[str] = field(default_factory=list)  # e.g. ["stages.detect.mode=reject"]


@dataclass
class DemoRun:
    corpus_files: int
    score: ScoreRun


def run_demo(cfg_node: DictConfig) -> DemoRun:
    cfg: DemoConfig = to_object(cfg_node)
    out = Path(cfg.output)
    save_resolved_config(cfg_node, out)
    corpus = build_sample_corpus(out / "raw", cfg.corpus)
    log.info("sample corpus: %s", corpus)
    score_cfg = load_score_config(
        cfg.score_config, [f"input=[{corpus.images_dir.resolve()}]", f"output={out / 'score'}", *cfg.score_overrides]
    )
    with ray_session(cfg.address, num_cpus=cfg.num_cpus):
        score = run_score(score_cfg)
    return DemoRun(len(corpus.entries), score)
