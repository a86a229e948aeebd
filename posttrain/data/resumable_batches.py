"""Endless, resumable batches over a map-style dataset, split across ranks.

Each epoch a permutation seeded by (seed, epoch) is dealt to the ranks (rank r takes every world_size-th index) and
cut into full batches (the remainder waits for the next epoch's shuffle). The position is (epoch, batches handed
out); a resumed run rebuilds the same permutation and starts after the last batch, and datasets that augment draw
from (seed, epoch, index), so the batches are those of an uninterrupted run.
"""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from common.training.distributed import DistInfo


class ResumableBatches:
    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        num_workers: int,
        seed: int,
        info: DistInfo,
        collate: Callable[[list[Any]], Any],
    ) -> None:
        per_rank = len(dataset) // info.world_size
        if per_rank < batch_size:
            raise ValueError(
                f"{len(dataset)} training samples cannot fill a batch of {batch_size} on each of {info.world_size} "
                "process(es): lower batch_size or add samples"
            )
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.seed, self.info, self.collate = seed, info, collate
        self.epoch, self.position = 0, 0

    def batches_per_epoch(self) -> int:
        return len(self.dataset) // self.info.world_size // self.batch_size

    def epoch_indices(self, epoch: int) -> list[list[int]]:
        order = torch.randperm(
            len(self.dataset), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        )
        mine = order[self.info.rank :: self.info.world_size].tolist()
        n = self.batches_per_epoch()
        return [mine[i * self.batch_size : (i + 1) * self.batch_size] for i in range(n)]

    def __iter__(self) -> Iterator[Any]:
        while True:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)  # augmentations are seeded by (seed, epoch, index)
            remaining = self.epoch_indices(self.epoch)[self.position :]
            loader = DataLoader(
                self.dataset, batch_sampler=remaining, num_workers=self.num_workers, collate_fn=self.collate
            )
            for batch in loader:
                self.position += 1
                yield batch
            self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Tensors stacked along a new batch dimension; everything else (meta dicts, names) kept as a list."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out
