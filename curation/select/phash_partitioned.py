"""Perceptual-hash dedup over all parts as Ray tasks, exact (the same groups as `phash_dedup` on one table):

1. one task per part: its (phash, global id) pairs, sorted, cut into P buckets by the hash's leading bits;
2. one task per bucket: exact groups (np.unique; every row joins its value's first row), then the bucket's distinct
   values are ordered, per multi-index table, by Q partitions of that table's key;
3. one task per (table, partition): the near pairs among the distinct values whose table key falls in the partition.
   Two hashes within the radius share a table's whole key (see `phash_index.index_plan`), so a pair never crosses
   partitions and every pair is found;
4. one task: connected components over the (few) edges, the most preferred row of each kept (`duplicate_groups`).

Every task holds about n / P or n / Q hashes, so P and Q follow the memory budget. Intermediate arrays go to
`select/phash_dedup/tmp/` as memory-mapped `.npy` files, never through the driver.
"""

from pathlib import Path

import numpy as np

from common.reasons import RejectReason
from curation.select.duplicate_groups import load_edges, resolve
from curation.select.phash_dedup import PhashDedupConfig
from curation.select.phash_index import IndexPlan, index_plan, table_key, table_pairs
from curation.select.store import Store, meta_path
from curation.select.tasks import run_tasks, select_task

BYTES_PER_HASH = 64  # a bucket task's working set per distinct hash: value, id, sort copies, one table's order


def partitions(n: int, budget_bytes: int, tables: int, minimum: int = 4) -> int:
    """A power of two, at least `minimum`, so that one bucket's hashes and their per-table orders fit the budget."""
    per_task = max(1, budget_bytes // (BYTES_PER_HASH + 4 * tables))
    wanted = max(minimum, -(-n // per_task))
    return 1 << max(0, (wanted - 1).bit_length())


def _bucket_part(folder: str, shard_id: int, offset: int, tmp: str, bits: int) -> int:
    import pyarrow.parquet as pq

    phash = pq.read_table(meta_path(Path(folder), shard_id), columns=["phash"])["phash"]
    rows = np.flatnonzero(phash.is_valid().to_numpy(zero_copy_only=False))
    values = phash.drop_null().to_numpy().astype(np.uint64, copy=False)
    order = np.argsort(values, kind="stable")
    values, gids = values[order], (rows[order] + offset).astype(np.uint64)
    bucket = values >> np.uint64(64 - bits)
    bounds = np.searchsorted(bucket, np.arange((1 << bits) + 1, dtype=np.uint64))
    np.save(Path(tmp) / f"hashes-{shard_id:05d}.npy", np.stack([values, gids]), allow_pickle=False)
    np.save(Path(tmp) / f"hashes-{shard_id:05d}.bounds.npy", bounds.astype(np.int64), allow_pickle=False)
    return len(values)


def _distinct_bucket(tmp: str, shard_ids: list[int], bucket: int, plan: IndexPlan, q_bits: int) -> dict:
    folder = Path(tmp)
    values, gids = [], []
    for shard_id in shard_ids:
        bounds = np.load(folder / f"hashes-{shard_id:05d}.bounds.npy")
        if bounds[bucket + 1] > bounds[bucket]:
            pairs = np.load(folder / f"hashes-{shard_id:05d}.npy", mmap_mode="r")
            values.append(np.asarray(pairs[0, bounds[bucket] : bounds[bucket + 1]]))
            gids.append(np.asarray(pairs[1, bounds[bucket] : bounds[bucket + 1]]).astype(np.int64))
    values = np.concatenate(values) if values else np.zeros(0, np.uint64)
    gids = np.concatenate(gids) if gids else np.zeros(0, np.int64)
    distinct, first, inverse, counts = np.unique(values, return_index=True, return_inverse=True, return_counts=True)
    representative = gids[first]
    inverse = inverse.reshape(-1)
    shared = (counts[inverse] >= 2) & (gids != representative[inverse])
    np.save(folder / f"exact-{bucket:05d}.npy", np.stack([gids[shared], representative[inverse[shared]]]))
    np.save(folder / f"distinct-{bucket:05d}.npy", np.stack([distinct, representative.astype(np.uint64)]))
    orders, bounds = [], []
    for combo in plan.combos:
        key, width = table_key(distinct, plan.blocks, combo)
        partition = key >> np.uint64(width - q_bits)
        order = np.argsort(partition, kind="stable")
        orders.append(order.astype(np.int64))
        bounds.append(np.searchsorted(partition[order], np.arange((1 << q_bits) + 1, dtype=np.uint64)))
    np.save(folder / f"order-{bucket:05d}.npy", np.stack(orders) if orders else orders_none())
    np.save(folder / f"order-{bucket:05d}.bounds.npy", np.stack(bounds).astype(np.int64) if bounds else orders_none())
    return {"exact_groups": int((counts >= 2).sum()), "distinct": len(distinct)}


def orders_none() -> np.ndarray:
    return np.zeros((0, 0), np.int64)


def _near_partition(tmp: str, buckets: int, table: int, partition: int, plan: IndexPlan, t: int) -> int:
    folder = Path(tmp)
    values, reps = [], []
    for bucket in range(buckets):
        bounds = np.load(folder / f"order-{bucket:05d}.bounds.npy")[table]
        if bounds[partition + 1] == bounds[partition]:
            continue
        order = np.load(folder / f"order-{bucket:05d}.npy", mmap_mode="r")[
            table, bounds[partition] : bounds[partition + 1]
        ]
        distinct = np.load(folder / f"distinct-{bucket:05d}.npy", mmap_mode="r")
        values.append(distinct[0][np.asarray(order)])
        reps.append(distinct[1][np.asarray(order)].astype(np.int64))
    if len(values) == 0:
        return 0
    values, reps = np.concatenate(values), np.concatenate(reps)
    pairs = table_pairs(values, plan.blocks, plan.combos[table], t)
    left, right = reps[pairs // len(values)], reps[pairs % len(values)]
    edges = np.stack([np.minimum(left, right), np.maximum(left, right)])
    np.save(folder / f"near-{table:03d}-{partition:05d}.npy", edges, allow_pickle=False)
    return edges.shape[1]


def phash_dedup_partitioned(
    store: Store, cfg: PhashDedupConfig, folder: Path, *, budget_bytes: int, nodes: set[str]
) -> tuple[dict, dict[int, int]]:
    """Runs the step, writes its removal files into `folder`; returns (stats, removed rows per part)."""
    n = store.rows
    tmp = folder / "tmp"
    t = cfg.max_distance
    plan = index_plan(t, max(n, 2)) if t >= 1 else None
    tables = len(plan.combos) if plan else 0
    p_bits = (partitions(n, budget_bytes, tables) - 1).bit_length()
    q_bits = min(p_bits, plan.key_bits) if plan else 0
    shard_ids = [int(s) for s in store.shard_ids]
    offsets = store.offsets
    bucket_task = select_task(_bucket_part)
    hashed = run_tasks(
        [bucket_task.remote(str(store.folder), s, int(offsets[i]), str(tmp), p_bits) for i, s in enumerate(shard_ids)],
        desc="phash: bucket",
        nodes=nodes,
    )
    empty_plan = plan if plan else IndexPlan(blocks=(range(0, 64),), combos=())
    distinct_task = select_task(_distinct_bucket)
    buckets = run_tasks(
        [distinct_task.remote(str(tmp), shard_ids, b, empty_plan, q_bits) for b in range(1 << p_bits)],
        desc="phash: exact groups",
        nodes=nodes,
    )
    near = []
    if plan:
        near_task = select_task(_near_partition)
        refs = [
            near_task.remote(str(tmp), 1 << p_bits, j, q, plan, t) for j in range(tables) for q in range(1 << q_bits)
        ]
        near = run_tasks(refs, desc=f"phash: near pairs ({tables} tables)", nodes=nodes)
    groups = run_tasks(
        [select_task(resolve_edges).remote(store, str(tmp), list(cfg.keep_by), str(folder))],
        desc="phash: components",
        nodes=nodes,
    )[0]
    nodes.update(groups["nodes"])
    stats = {
        "in": n,
        "kept": n - groups["removed"],
        "rejected": {RejectReason.DUP_PHASH: groups["removed"]} if groups["removed"] else {},
        "exact_groups": sum(b["exact_groups"] for b in buckets),
        "near_pairs": groups["near_pairs"],
        "components": groups["components"],
        "hashed": sum(hashed),
        "buckets": 1 << p_bits,
        "partitions_per_table": (1 << q_bits) if plan else 0,
        "near_tasks": len(near),
    }
    return stats, groups["removed_per_part"]


def resolve_edges(store: Store, tmp: str, keep_by: list[str], folder: str | None) -> dict:
    """Exact-group edges and near pairs (deduplicated: a pair agreeing on several tables' keys is found by each of
    them) -> components -> removal files. Runs as one Ray task."""
    exact_left, exact_right = load_edges(sorted(Path(tmp).glob("exact-*.npy")))
    near_left, near_right = load_edges(sorted(Path(tmp).glob("near-*.npy")))
    if len(near_left):
        pairs = np.unique(np.stack([near_left, near_right], axis=1), axis=0)
        near_left, near_right = pairs[:, 0], pairs[:, 1]
    left, right = np.concatenate([exact_left, near_left]), np.concatenate([exact_right, near_right])
    nodes: set[str] = set()
    groups = resolve(store, left, right, keep_by, Path(folder) if folder else None, nodes)
    return {**groups, "near_pairs": len(near_left), "nodes": sorted(nodes)}
