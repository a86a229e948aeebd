"""The select phase's outputs, one Ray task per part: `selection.parquet/part-XXXXX.parquet` (the part's selected
rows with their cluster ids and leaf distance) and `select/rejected.parquet/part-XXXXX.parquet` (key, reason,
dup_of of every row a step removed). Both are directories of parquet parts, read as one table by pyarrow
(`pq.read_table` / `pyarrow.dataset`). Each task returns counts and per-level cluster sizes, summed by the caller.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.select.cluster_steps import cluster_ids
from curation.select.step_files import part_file, read_removed, write_table
from curation.select.store import meta_path

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("reject_reason", pa.string()),
        pa.field("dup_of", pa.string()),
    ]
)


def finish_part(
    folder: str,
    shard_id: int,
    count: int,
    removals: list[tuple[str, str]],
    clustering: str,
    ks: list[int],
    selection: str,
    rejected: str,
) -> dict:
    """`removals`: (step folder, reject reason) in step order."""
    meta = pq.read_table(meta_path(Path(folder), shard_id))
    alive = np.ones(count, dtype=bool)
    gone_rows, gone_reasons, gone_dup = [], [], []
    for step, reason in removals:
        table = read_removed(Path(step), shard_id)
        rows = table["row"].to_numpy()
        alive[rows] = False
        gone_rows.append(rows)
        gone_reasons += [reason] * len(rows)
        gone_dup += table["dup_of"].to_pylist()
    path = part_file(Path(clustering), shard_id)
    clusters = pq.read_table(path) if path.exists() else None
    selected = np.flatnonzero(alive)
    levels = len(ks)
    if clusters is not None and clusters.num_rows:
        ids_all, positions = cluster_ids(clusters), clusters["row"].to_numpy()
        at = np.searchsorted(positions, selected)
        ids, distance = ids_all[at], clusters["leaf_distance"].to_numpy()[at]
    else:
        ids_all = np.zeros((0, levels), np.int32)
        ids, distance = np.zeros((0, levels), np.int32), np.zeros(0, np.float32)
    out = meta.take(pa.array(selected))
    out = out.append_column(
        "cluster_ids", pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1).astype(np.int32)), levels)
    ).append_column("leaf_distance", pa.array(distance.astype(np.float32)))
    write_table(part_file(Path(selection), shard_id), out)
    rows = np.concatenate(gone_rows) if gone_rows else np.zeros(0, np.int64)
    keys = meta["key"].take(pa.array(rows)) if len(rows) else pa.array([], pa.string())
    table = pa.table(
        {"key": keys, "reject_reason": pa.array(gone_reasons, pa.string()), "dup_of": pa.array(gone_dup, pa.string())},
        schema=REJECTED_SCHEMA,
    )
    write_table(part_file(Path(rejected), shard_id), table.sort_by("key"))
    return {
        "rows": count,
        "kept": len(selected),
        "before": [np.bincount(ids_all[:, t], minlength=ks[t]) for t in range(levels)],
        "after": [np.bincount(ids[:, t], minlength=ks[t]) for t in range(levels)],
    }
