"""The end-to-end demo on the sample corpus: build it, run the whole curation (score -> select -> write -> report)
with the tiny models, model filters in audit mode, on one local Ray, then pretrain the tiny backbone on its shards,
then run every post-training task's predict on the corpus photos with that backbone (heads untrained: the demo shows
the outputs and visualisations each task writes, not their quality)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from common.config import bounded, load_config, save_resolved_config, to_object
from curation.config import load_curate_config
from curation.curate import CurateRun, run_curate
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.sample_corpus.files import ORIGINAL
from posttrain.config import TASKS, PosttrainConfig
from posttrain.run import run_predict
from pretrain.config import PretrainConfig
from pretrain.run import run_pretrain
from pretrain.train import TrainRun

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    output: str = ".demo"
    address: str | None = None  # a running Ray cluster; None starts a private local one
    num_cpus: int | None = bounded(None, ge=1)
    corpus: SampleCorpusConfig = field(default_factory=SampleCorpusConfig)
    curate_config: str = "configs/curation/demo.yaml"
    curate_overrides: list[str] = field(default_factory=list)  # e.g. ["stages.detect.mode=reject"]
    pretrain_config: str = "configs/pretrain/tiny.yaml"
    pretrain_overrides: list[str] = field(default_factory=list)  # e.g. ["steps=100"]
    posttrain_config: str = "configs/posttrain/tiny.yaml"
    predict_photos: int = bounded(3, ge=1)  # corpus originals to predict on, per task


@dataclass
class DemoRun:
    corpus_files: int
    curate: CurateRun
    curated_dir: Path
    pretrain: TrainRun
    pretrain_dir: Path
    predictions: dict[str, list[Path]]  # task -> files written


def run_demo(cfg_node: DictConfig) -> DemoRun:
    cfg: DemoConfig = to_object(cfg_node)
    out = Path(cfg.output)
    save_resolved_config(cfg_node, out)
    corpus = build_sample_corpus(out / "raw", cfg.corpus)
    log.info("sample corpus: %s", corpus)
    curated = out / "curated"
    runtime = [f"address={cfg.address}"] if cfg.address else []
    runtime += [f"num_cpus={cfg.num_cpus}"] if cfg.num_cpus else []
    curate_cfg = load_curate_config(
        cfg.curate_config,
        [f"input=[{corpus.images_dir.resolve()}]", f"output={curated}", *runtime, *cfg.curate_overrides],
    )
    curate = run_curate(curate_cfg)
    pretrained = out / "pretrain"
    overrides = [f"shards=[{curated}]", f"output={pretrained}", *cfg.pretrain_overrides]
    pretrain_cfg = load_config(PretrainConfig, config_path=cfg.pretrain_config, overrides=overrides)
    pretrain = run_pretrain(pretrain_cfg)
    photos = [
        str(corpus.images_dir / e.path) for e in corpus.entries if e.kind == ORIGINAL and e.expected_reason is None
    ][: cfg.predict_photos]
    predictions = {}
    for task in TASKS:
        overrides = [f"task={task}", f"output={out / 'posttrain' / task}", f"backbone.checkpoint={pretrained}"]
        post_cfg = load_config(PosttrainConfig, config_path=cfg.posttrain_config, overrides=overrides)
        predictions[task] = run_predict(post_cfg, photos)
    return DemoRun(len(corpus.entries), curate, curated, pretrain, pretrained, predictions)
