"""The four select steps as one function each: rows still in the running -> the step's artifact table + stats.

Dedup and sampling artifacts list the rows the step removed (key, dup_of); the clustering artifact gives every
row its cluster id per level and its distance to the leaf centroid.
"""

from typing import Any

import numpy as np
import pyarrow as pa

from common.reasons import RejectReason
from curation.select.balanced_sampling import SamplingConfig, balanced_sample
from curation.select.components import preference_rank
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans
from curation.select.phash_dedup import PhashDedupConfig, phash_dedup
from curation.select.semdedup import SemDedupConfig, semdedup

REMOVED_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("dup_of", pa.string())])


def _removed(meta: pa.Table, dup_of: np.ndarray) -> pa.Table:
    """Rows whose dup_of index is set, with the kept row's key."""
    gone = np.flatnonzero(dup_of >= 0)
    keys = meta["key"].to_numpy(zero_copy_only=False)
    return pa.table({"key": keys[gone].tolist(), "dup_of": keys[dup_of[gone]].tolist()}, schema=REMOVED_SCHEMA)


def _counts(n_in: int, removed: int, reason: str) -> dict[str, Any]:
    return {"in": n_in, "kept": n_in - removed, "rejected": {reason: removed} if removed else {}}


def phash_step(meta: pa.Table, clip: np.ndarray, cfg: PhashDedupConfig, seed: int) -> tuple[pa.Table, dict]:
    result = phash_dedup(meta, cfg)
    stats = _counts(meta.num_rows, result.removed, RejectReason.DUP_PHASH)
    stats.update(exact_groups=result.exact_groups, near_pairs=result.near_pairs, components=result.components)
    return _removed(meta, result.dup_of), stats


def semdedup_step(
    meta: pa.Table, clip: np.ndarray, cfg: SemDedupConfig, seed: int, keep_by: list[str]
) -> tuple[pa.Table, dict]:
    result = semdedup(clip, preference_rank(meta, keep_by), cfg, seed=seed)
    if cfg.mode == "audit":  # the decisions are counted, the rows stay
        stats = _counts(meta.num_rows, 0, RejectReason.DUP_EMBEDDING)
        stats["would_reject"] = {RejectReason.DUP_EMBEDDING: result.removed} if result.removed else {}
        dup_of = np.full(meta.num_rows, -1, dtype=np.int64)
    else:
        stats, dup_of = _counts(meta.num_rows, result.removed, RejectReason.DUP_EMBEDDING), result.dup_of
    stats.update(pairs=result.pairs, clusters=result.clusters)
    return _removed(meta, dup_of), stats


def cluster_step(meta: pa.Table, clip: np.ndarray, cfg: HierarchyConfig, seed: int) -> tuple[pa.Table, dict]:
    if meta.num_rows == 0:  # nothing survived the filters: an empty, well-typed result keeps later steps simple
        ids, distance, per_level = np.zeros((0, cfg.levels), np.int32), np.zeros(0, np.float32), [0] * cfg.levels
    else:
        hierarchy = hierarchical_kmeans(clip, cfg, seed=seed)
        ids, distance, per_level = hierarchy.level_ids, hierarchy.leaf_distance, hierarchy.clusters
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    levels = ids.shape[1]
    table = pa.table(
        {
            "key": meta["key"],
            "cluster_ids": pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), levels),
            "leaf_distance": pa.array(np.asarray(distance, dtype=np.float32)),
        }
    )
    stats = _counts(meta.num_rows, 0, "")
    stats["clusters_per_level"] = list(per_level)
    return table, stats


def sampling_step(clusters: pa.Table, cfg: SamplingConfig, seed: int) -> tuple[pa.Table, dict]:
    n = clusters.num_rows
    target = cfg.target(n)
    ids = cluster_id_matrix(clusters)
    distance = clusters["leaf_distance"].to_numpy()
    keep = (
        balanced_sample(ids, target, strategy=cfg.strategy, leaf_distance=distance, seed=seed) if n else ids[:, 0] >= 0
    )
    gone = clusters.filter(pa.array(~keep))
    table = pa.table({"key": gone["key"], "dup_of": pa.nulls(gone.num_rows, pa.string())}, schema=REMOVED_SCHEMA)
    stats = _counts(n, gone.num_rows, RejectReason.BALANCE_DOWNSAMPLED)
    stats["target"] = target
    return table, stats


def cluster_id_matrix(clusters: pa.Table) -> np.ndarray:
    column = clusters["cluster_ids"].combine_chunks()
    levels = column.type.list_size
    return column.flatten().to_numpy().reshape(len(column), levels)
