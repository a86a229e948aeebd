"""A pretraining run from its config: the curated shards through the streaming loader into the training loop."""

import logging
from pathlib import Path

from omegaconf import DictConfig

from common.config import ConfigError, save_resolved_config, to_object
from pretrain.config import PretrainConfig
from pretrain.data.loader import ResumableLoader, build_loader
from pretrain.data.shards import list_shards
from pretrain.train import TrainRun, train

log = logging.getLogger(__name__)


class EpochStream:
    """The loader as an endless stream of batches across epochs, with the loader's resumable position."""

    def __init__(self, loader: ResumableLoader) -> None:
        self.loader = loader

    def __iter__(self):
        while True:
            empty = True
            for batch in self.loader:
                empty = False
                yield batch
            if empty:
                raise RuntimeError("an epoch of the pretraining shards gave no batch: every sample failed to decode")

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)


def run_pretrain(cfg_node: DictConfig, *, resume: bool = False, stop_at: int | None = None) -> TrainRun:
    cfg: PretrainConfig = to_object(cfg_node)
    if not cfg.shards:
        raise ConfigError("no shards given: set shards=[<curation output dir or shard glob>, ...]")
    shards = list_shards(list(cfg.shards))
    if not shards:
        raise ConfigError(f"no complete shards found under {list(cfg.shards)}: run `humans1b curate` first")
    out = Path(cfg.output)
    save_resolved_config(cfg_node, out)
    log.info("pretraining %s on %d shards", cfg.objective.backbone, len(shards))
    loader, _ = build_loader(
        shards,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        crops=cfg.crops,
        shuffle_buffer=cfg.shuffle_buffer,
        seed=cfg.seed,
    )
    return train(cfg, EpochStream(loader), out, resume=resume, stop_at=stop_at)
