"""Input shards as a Ray Dataset: one task reads one whole shard, so every row of a shard carries its final count."""

import logging
from collections.abc import Sequence

import pyarrow as pa
import ray.data

from curation.readers.read import read_input_shard
from curation.readers.rows import MAX_FILE_BYTES
from curation.readers.shard import InputShard

log = logging.getLogger(__name__)

_SHARD = "shard"


def _read_batch(batch: pa.Table, *, max_file_bytes: int) -> pa.Table:
    (text,) = batch[_SHARD].to_pylist()  # batch_size=1: one shard per call
    return read_input_shard(InputShard.from_json(text), max_file_bytes=max_file_bytes)


def read_dataset(
    shards: Sequence[InputShard],
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    concurrency: int | None = None,
    num_cpus: float = 1.0,
) -> ray.data.Dataset:
    """Rows of read_input_shard over `shards`, in READ_SCHEMA.

    One block per shard, so each shard is read by its own task and a slow tar does not hold others back. A shard
    is held in memory whole while it is read (about files_per_shard images, or one tar); Ray slices the output
    into blocks of its target block size. `concurrency` caps the read tasks running at once (None: Ray decides
    from the CPUs and the object store's back-pressure); reading is I/O bound, so `num_cpus` below 1 lets more
    reads overlap.
    """
    if not shards:
        raise ValueError("no input shards to read; discover_input_shards found none or all are done")
    items = [{_SHARD: shard.to_json()} for shard in shards]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _read_batch,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"max_file_bytes": max_file_bytes},
        compute=ray.data.TaskPoolStrategy(size=concurrency) if concurrency else None,
        num_cpus=num_cpus,
    )
