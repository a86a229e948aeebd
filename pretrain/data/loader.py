"""Streaming, resumable multi-crop batches from WebDataset shards.

Order. Each epoch the shard list is shuffled with a seed from (seed, epoch) and dealt round-robin to the
world_size x num_workers streams (stream = rank * num_workers + worker): every shard, hence every sample, goes to
exactly one stream. When the shard count does not divide evenly, streams get one shard more or less, so ranks yield
different numbers of batches; a DDP trainer must then stop each epoch at a fixed step count (e.g. the minimum over
ranks) rather than run every rank to exhaustion. Inside a stream, samples pass a webdataset shuffle buffer seeded from
(seed, epoch, stream). Crops are seeded from (seed, epoch, key). So an epoch's batches are a pure function of
(shards, seed, epoch, rank, world_size, num_workers, batch_size, shuffle_buffer, crops).

Resume. The loader counts, per stream, the raw samples (decoded or not) behind the batches it has handed out, and
which worker's batch comes next. A resumed loader rebuilds the same streams, drops the first `consumed` raw samples
of each (after the shuffle buffer, before decoding: it re-reads those tar bytes but decodes nothing) and rotates the
worker ids so torch's round-robin over workers continues with the stream that was next. The batches that follow are
those of an uninterrupted run.

Failures. A sample whose `jpg` is missing or does not decode is skipped and counted under its reason in
`LoaderState.skipped`; it never ends the epoch. A shard that cannot be read raises: skipping it silently would make
the epoch's content depend on transient storage errors.
"""

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import webdataset as wds
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from common.image_decode import DecodeConfig, decode_image
from common.reasons import RejectReason
from common.shard_reader import iter_shard
from pretrain.data.views import MultiCropConfig, MultiCropTransform, sample_seed, stable_seed

log = logging.getLogger(__name__)

# Curation already enforced the size rules; here only the pixel cap (decompression bombs) and EXIF matter.
LOADER_DECODE = DecodeConfig(min_short_side=1, max_aspect_ratio=float("inf"))
MISSING_JPG = RejectReason.NO_IMAGE_MEMBER.value
DROPPED_PARTIAL_BATCH = "dropped_partial_batch"
# Bookkeeping entries a worker adds to each batch; the loader removes them before the trainer sees the batch.
_WORKER, _RAW, _SKIPPED = "_worker", "_raw", "_skipped"


@dataclass
class LoaderState:
    """Where the loader stands; `state_dict()` goes into a checkpoint and back through `load_state_dict()`."""

    rank: int
    world_size: int
    num_workers: int  # streams per rank: max(1, DataLoader workers)
    seed: int
    batch_size: int
    epoch: int = 0
    consumed: list[int] = field(default_factory=list)  # raw samples behind handed-out batches, per worker of this rank
    next_worker: int = 0  # the worker whose batch comes next in torch's round-robin
    batches: int = 0  # non-empty batches handed out this epoch
    samples: int = 0  # samples handed out, all epochs
    skipped: dict[str, int] = field(default_factory=dict)  # samples skipped per reason, all epochs

    def __post_init__(self) -> None:
        if not self.consumed:
            self.consumed = [0] * self.num_workers

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.consumed, self.next_worker, self.batches = epoch, [0] * self.num_workers, 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "num_workers": self.num_workers,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "epoch": self.epoch,
            "consumed": list(self.consumed),
            "next_worker": self.next_worker,
            "batches": self.batches,
            "samples": self.samples,
            "skipped": dict(self.skipped),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("rank", "world_size", "num_workers", "seed", "batch_size"):
            if state[name] != getattr(self, name):
                raise ValueError(
                    f"loader state was saved with {name}={state[name]} but this loader has {getattr(self, name)}: "
                    f"resume with the same {name}, or start the epoch afresh without loading the loader state"
                )
        if len(state["consumed"]) != self.num_workers:
            raise ValueError(f"loader state has {len(state['consumed'])} worker counts, expected {self.num_workers}")
        self.epoch, self.consumed, self.next_worker = state["epoch"], list(state["consumed"]), state["next_worker"]
        self.batches, self.samples, self.skipped = state["batches"], state["samples"], dict(state["skipped"])


def collate_views(samples: list[dict[str, Any]], crops: MultiCropConfig) -> dict[str, Any]:
    """Views first, so a trainer loops over views: global [2, B, 3, Hg, Wg], local [N, B, 3, Hl, Wl]."""
    if not samples:
        (hg, wg), (hl, wl) = crops.global_size, crops.local_size
        return {
            "global": torch.empty(2, 0, 3, hg, wg),
            "local": torch.empty(crops.num_local, 0, 3, hl, wl),
            "keys": [],
        }
    return {
        "global": torch.stack([s["global"] for s in samples], dim=1),
        "local": torch.stack([s["local"] for s in samples], dim=1),
        "keys": [s["__key__"] for s in samples],
    }


class ShardStreamDataset(IterableDataset):
    """Yields whole batches (with bookkeeping entries) from this worker's stream of the current epoch."""

    def __init__(
        self,
        shards: list[str],
        *,
        crops: MultiCropConfig,
        batch_size: int,
        shuffle_buffer: int,
        seed: int,
        rank: int,
        world_size: int,
        num_workers: int,
        drop_last: bool,
        decode: DecodeConfig,
    ) -> None:
        super().__init__()
        self.shards = list(shards)
        self.crops, self.transform = crops, MultiCropTransform(crops)
        self.batch_size, self.shuffle_buffer, self.seed = batch_size, shuffle_buffer, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, max(1, num_workers)
        self.drop_last, self.decode = drop_last, decode
        # Set by the loader before each iteration; copied into the workers with the dataset.
        self.epoch, self.skip, self.rotation = 0, [0] * self.num_workers, 0

    def stream_shards(self, stream: int) -> list[str]:
        """The shards of one stream in this epoch: a seeded shuffle of the list, dealt round-robin."""
        shuffled = [
            s["url"] for s in wds.SimpleShardList(self.shards, seed=stable_seed(self.seed, self.epoch, "shards"))
        ]
        return shuffled[stream :: self.world_size * self.num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        physical = info.id if info is not None else 0
        if info is not None and info.num_workers != self.num_workers:
            raise RuntimeError(f"dataset built for {self.num_workers} workers runs in {info.num_workers}")
        worker = (physical + self.rotation) % self.num_workers
        stream = self.rank * self.num_workers + worker
        shards = self.stream_shards(stream)
        if not shards:  # more streams than shards: this one idles this epoch
            return
        stages: list[Any] = [wds.SimpleShardList(shards), self._expand]
        if self.shuffle_buffer > 1:  # the buffer holds encoded samples: budget buffer x mean shard sample size
            rng = random.Random(stable_seed(self.seed, self.epoch, "samples", stream))
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng))
        pipeline = wds.DataPipeline(*stages)
        yield from self._batches(pipeline, worker, self.skip[worker])

    def _expand(self, shards: Iterator[dict[str, str]]) -> Iterator[dict[str, Any]]:
        # common.shard_reader rather than webdataset's tar reader: it opens URIs through common.filesystem and
        # refuses unsafe tar members.
        for shard in shards:
            yield from iter_shard(shard["url"])

    def _batches(self, raw: Iterator[dict[str, Any]], worker: int, skip: int) -> Iterator[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        pending_raw, skipped = 0, {}
        for index, sample in enumerate(raw):
            if index < skip:  # already handed out before the resume: decode nothing
                continue
            pending_raw += 1
            views = self._views(sample)
            if isinstance(views, str):
                skipped[views] = skipped.get(views, 0) + 1
                continue
            batch.append(views)
            if len(batch) == self.batch_size:
                yield self._emit(batch, worker, pending_raw, skipped)
                batch, pending_raw, skipped = [], 0, {}
        if batch and self.drop_last:
            skipped[DROPPED_PARTIAL_BATCH] = len(batch)
            batch = []
        if batch or pending_raw:  # an empty batch still reports trailing skips and raw counts to the loader
            yield self._emit(batch, worker, pending_raw, skipped)

    def _views(self, sample: dict[str, Any]) -> dict[str, Any] | str:
        """The sample's views, or the reason it is skipped."""
        key = sample["__key__"]
        if "jpg" not in sample:
            return MISSING_JPG
        decoded = decode_image(sample["jpg"], self.decode)
        if decoded.image is None:
            log.debug("skipping sample %s: %s", key, decoded.reason)
            return str(decoded.reason)
        views = self.transform(decoded.image, seed=sample_seed(self.seed, self.epoch, key))
        return {"__key__": key, **views}

    def _emit(self, batch: list[dict[str, Any]], worker: int, raw: int, skipped: dict[str, int]) -> dict[str, Any]:
        return {**collate_views(batch, self.crops), _WORKER: worker, _RAW: raw, _SKIPPED: skipped}


class ResumableLoader(DataLoader):
    """A DataLoader over a ShardStreamDataset that records its position in `self.state` as batches are handed out.

    Iterating runs the rest of the current epoch; when it ends, the state moves to the next epoch. Breaking out and
    iterating again (or building a new loader and loading a saved state) continues after the last handed-out batch.
    """

    def __init__(self, dataset: ShardStreamDataset, state: LoaderState, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=None, **kwargs)
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)

    def __iter__(self) -> Iterator[dict[str, Tensor | list[str]]]:
        state, dataset = self.state, self.dataset
        assert isinstance(dataset, ShardStreamDataset)
        dataset.epoch, dataset.skip, dataset.rotation = state.epoch, list(state.consumed), state.next_worker
        for batch in super().__iter__():
            worker = batch.pop(_WORKER)
            state.consumed[worker] += batch.pop(_RAW)
            for reason, n in batch.pop(_SKIPPED).items():
                state.skipped[reason] = state.skipped.get(reason, 0) + n
            state.next_worker = (worker + 1) % state.num_workers
            if batch["keys"]:
                state.batches += 1
                state.samples += len(batch["keys"])
                yield batch
        log.info("epoch %d done: %d batches; skipped so far %s", state.epoch, state.batches, state.skipped)
        state.start_epoch(state.epoch + 1)


def build_loader(
    shards: list[str],
    *,
    batch_size: int,
    num_workers: int,
    crops: MultiCropConfig,
    shuffle_buffer: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    decode: DecodeConfig = LOADER_DECODE,
    pin_memory: bool = False,
) -> tuple[ResumableLoader, LoaderState]:
    """The loader for one rank and its state holder (also `loader.state`).

    Each batch: {"global": [2, B, 3, Hg, Wg], "local": [N, B, 3, Hl, Wl], "keys": list[str]}; B < batch_size only for
    a worker's last batch of an epoch (unless drop_last). Decode and views run in the DataLoader workers.
    """
    if not shards:
        raise ValueError("no shards: pass the output of pretrain.data.shards.list_shards")
    if batch_size < 1 or num_workers < 0 or shuffle_buffer < 0:
        raise ValueError(
            f"need batch_size >= 1, num_workers >= 0, shuffle_buffer >= 0; got "
            f"{batch_size}, {num_workers}, {shuffle_buffer}"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    dataset = ShardStreamDataset(
        shards,
        crops=crops,
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
        drop_last=drop_last,
        decode=decode,
    )
    state = LoaderState(
        rank=rank, world_size=world_size, num_workers=max(1, num_workers), seed=seed, batch_size=batch_size
    )
    # No persistent workers: the dataset (with this epoch's skip counts) is copied into fresh workers per iteration.
    loader = ResumableLoader(dataset, state, num_workers=num_workers, pin_memory=pin_memory)
    return loader, state
