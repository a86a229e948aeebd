"""Hierarchical k-means and balanced sampling over all parts, as Ray tasks.

Clustering runs as one coordinating task: it fits on bounded samples read from the memory-mapped parts and sends
every full assignment pass out as one task per part (`AliveRows.assign_all`); it keeps the per-row cluster ids and
leaf distances (16 B per row) and writes them per part. Sampling reads those 16 B per row back in one task (the
water-filling down the tree needs every leaf's size and, for strategy 'c', every distance) and writes the rows it
drops per part.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.reasons import RejectReason
from curation.select.alive_rows import AliveRows
from curation.select.balanced_sampling import SamplingConfig, balanced_sample
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans
from curation.select.step_files import part_file, write_removed, write_table
from curation.select.store import Store


def clustering_table(positions: np.ndarray, ids: np.ndarray, distance: np.ndarray) -> pa.Table:
    levels = ids.shape[1]
    return pa.table(
        {
            "row": pa.array(positions.astype(np.int32)),
            "cluster_ids": pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1).astype(np.int32)), levels),
            "leaf_distance": pa.array(distance.astype(np.float32)),
        }
    )


def cluster_ids(table: pa.Table) -> np.ndarray:
    column = table["cluster_ids"].combine_chunks()
    levels = column.type.list_size
    return column.flatten().to_numpy().reshape(len(column), levels)


def cluster_task(rows: AliveRows, cfg: HierarchyConfig, seed: int, folder: str) -> dict:
    """Runs as one Ray task: fits the hierarchy, writes `part-XXXXX.parquet` (row, cluster_ids, leaf_distance)."""
    n = len(rows)
    if n == 0:
        per_level, ids, distance = [0] * cfg.levels, np.zeros((0, cfg.levels), np.int32), np.zeros(0, np.float32)
    else:
        hierarchy = hierarchical_kmeans(rows, cfg, seed=seed, progress=False)
        per_level, ids, distance = hierarchy.clusters, hierarchy.level_ids, hierarchy.leaf_distance
    offsets = rows.offsets
    for p in np.flatnonzero(rows.alive_counts):
        a, b = offsets[p], offsets[p + 1]
        table = clustering_table(rows.positions(p), ids[a:b], distance[a:b])
        write_table(part_file(Path(folder), int(rows.store.shard_ids[p])), table)
    stats = {"in": n, "kept": n, "rejected": {}, "clusters_per_level": [int(k) for k in per_level]}
    return {"stats": stats, "nodes": sorted(rows.nodes)}


def sample_task(store: Store, clustering: str, cfg: SamplingConfig, seed: int, folder: str) -> dict:
    """Runs as one Ray task: balanced sampling on the clustering's ids and distances; writes the dropped rows."""
    tables, parts = [], []
    for shard_id in store.shard_ids:
        path = part_file(Path(clustering), int(shard_id))
        if path.exists():
            tables.append(pq.read_table(path))
            parts.append(int(shard_id))
    n = sum(t.num_rows for t in tables)
    target = cfg.target(n)
    if n:
        ids = np.concatenate([cluster_ids(t) for t in tables])
        distance = np.concatenate([t["leaf_distance"].to_numpy() for t in tables])
        keep = balanced_sample(ids, target, strategy=cfg.strategy, leaf_distance=distance, seed=seed)
    else:
        keep = np.zeros(0, dtype=bool)
    removed_per_part, start = {}, 0
    for shard_id, table in zip(parts, tables, strict=True):
        dropped = ~keep[start : start + table.num_rows]
        start += table.num_rows
        if dropped.any():
            write_removed(Path(folder), shard_id, table["row"].to_numpy()[dropped])
            removed_per_part[shard_id] = int(dropped.sum())
    removed = int((~keep).sum())
    stats = {
        "in": n,
        "kept": n - removed,
        "rejected": {RejectReason.BALANCE_DOWNSAMPLED: removed} if removed else {},
        "target": target,
    }
    return {"stats": stats, "removed_per_part": removed_per_part}
