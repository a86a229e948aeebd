"""A pretraining run from its config: the curated shards through the streaming loader into the training loop.

One process, or one per device under torchrun or Ray Train (pretrain/ray_train.py): each process calls
`run_pretrain`, which reads its rank from the process group and streams its own share of the shards.
"""

import logging
from pathlib import Path

from omegaconf import DictConfig

from common.config import ConfigError, save_resolved_config, to_object
from common.training.distributed import DistInfo, init_distributed
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


def run_pretrain(
    cfg_node: DictConfig, *, resume: bool = False, stop_at: int | None = None, info: DistInfo | None = None
) -> TrainRun:
    cfg: PretrainConfig = to_object(cfg_node)
    if not cfg.shards:
        raise ConfigError("no shards given: set shards=[<curation output dir or shard glob>, ...]")
    shards = list_shards(list(cfg.shards))
    if not shards:
        raise ConfigError(f"no complete shards found under {list(cfg.shards)}: run `humans1b curate` first")
    info = info or init_distributed(cfg.distributed.backend)
    streams = info.world_size * max(1, cfg.num_workers)
    if len(shards) < streams:
        raise ConfigError(
            f"{len(shards)} shards for {info.world_size} processes x {max(1, cfg.num_workers)} loader workers: every "
            f"loader stream needs a shard of its own; lower num_workers, use fewer processes, or write smaller shards"
        )
    out = Path(cfg.output)
    if info.is_main:
        save_resolved_config(cfg_node, out)
        log.info("pretraining %s on %d shards, %d process(es)", cfg.objective.backbone, len(shards), info.world_size)
    loader, _ = build_loader(
        shards,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        crops=cfg.crops,
        shuffle_buffer=cfg.shuffle_buffer,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
        drop_last=info.distributed,  # equal batches on every rank; the dropped samples are counted in the state
    )
    return train(cfg, EpochStream(loader), out, resume=resume, stop_at=stop_at, info=info)
