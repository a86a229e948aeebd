"""SemDeDup over all parts as Ray tasks (the method of `semdedup`, distributed):

1. spherical k-means fitted on a bounded sample of the rows left after phash dedup (one task);
2. one task per part: every row's `clusters_per_row` nearest clusters, as (cluster, global id) pairs sorted by cluster;
3. one task per group of consecutive clusters, sized to the memory budget (a cluster bigger than the budget is a group
   of its own: memory per task is bounded by the largest cluster): each cluster's members are read from the
   memory-mapped parts and every pair at cosine >= min_cosine is an edge;
4. one task: components over the edges, the most preferred row of each kept (`duplicate_groups`).
"""

from pathlib import Path

import numpy as np

from common.reasons import RejectReason
from curation.select.alive_rows import AliveRows, part_embeddings
from curation.select.duplicate_groups import load_edges, resolve
from curation.select.kmeans import fit_centroids
from curation.select.semdedup import SemDedupConfig, cluster_pairs, nearest_clusters
from curation.select.store import Store
from curation.select.tasks import run_tasks, select_task

SAMPLE_POINTS_PER_CENTROID = 256  # as the in-memory semdedup's kmeans call


def _fit(rows: AliveRows, k: int, seed: int, iterations: int, path: str) -> int:
    # The centroids only route rows to the clusters searched for pairs (each row to its 2 nearest): a sample capped
    # at the memory budget serves as well as 256 rows per centroid
    per_centroid = max(1, min(SAMPLE_POINTS_PER_CENTROID, rows.fit_budget_rows // k))
    centroids = fit_centroids(rows, k, seed=seed, iterations=iterations, max_points_per_centroid=per_centroid)
    np.save(path, centroids, allow_pickle=False)
    return len(centroids)


def _assign_part(
    folder: str, shard_id: int, count: int, removal_dirs: list[str], offset: int, centroids: str, m: int, tmp: str
) -> np.ndarray:
    positions, mapped = part_embeddings(folder, shard_id, count, removal_dirs)
    c = np.load(centroids, allow_pickle=False)
    ids = nearest_clusters(mapped[positions], c, min(m, len(c)))  # float16 rows of one part: ~15 MB at 10^4 x 768
    cluster = ids.reshape(-1)
    gid = np.repeat(positions + offset, ids.shape[1])
    order = np.argsort(cluster, kind="stable")
    np.save(Path(tmp) / f"assign-{shard_id:05d}.npy", np.stack([cluster[order], gid[order]]), allow_pickle=False)
    return np.bincount(cluster, minlength=len(c)).astype(np.int64)


def _group_pairs(store: Store, tmp: str, first: int, last: int, min_cosine: float, group: int) -> int:
    """Edges inside clusters first..last-1."""
    clusters, gids = [], []
    for shard_id in store.shard_ids:
        path = Path(tmp) / f"assign-{int(shard_id):05d}.npy"
        if not path.exists():
            continue
        pairs = np.load(path, mmap_mode="r")
        lo, hi = np.searchsorted(pairs[0], [first, last])
        if hi > lo:
            clusters.append(np.asarray(pairs[0, lo:hi]))
            gids.append(np.asarray(pairs[1, lo:hi]))
    edges = [np.zeros((2, 0), np.int64)]
    if clusters:
        cluster, gid = np.concatenate(clusters), np.concatenate(gids)
        members, where = np.unique(gid, return_inverse=True)
        x = _read_rows(store, members)
        order = np.argsort(cluster, kind="stable")
        bounds = np.searchsorted(cluster[order], np.arange(first, last + 1))
        for c in range(last - first):
            local = where[order[bounds[c] : bounds[c + 1]]]
            if len(local) < 2:
                continue
            i, j = cluster_pairs(x[local], min_cosine)
            a, b = members[local[i]], members[local[j]]
            edges.append(np.stack([np.minimum(a, b), np.maximum(a, b)]))
    edges = np.concatenate(edges, axis=1)
    np.save(Path(tmp) / f"pairs-{group:05d}.npy", edges, allow_pickle=False)
    return edges.shape[1]


def _read_rows(store: Store, gids: np.ndarray) -> np.ndarray:
    """Embeddings of sorted global ids, float32."""
    out = np.empty((len(gids), store.dim), dtype=np.float32)
    offsets = store.offsets
    part_of = np.searchsorted(offsets, gids, side="right") - 1
    starts = np.searchsorted(part_of, np.arange(len(store.counts) + 1))
    for p in np.flatnonzero(np.diff(starts)):
        out[starts[p] : starts[p + 1]] = store.embeddings(int(store.shard_ids[p]))[
            gids[starts[p] : starts[p + 1]] - offsets[p]
        ]
    return out


def cluster_groups(sizes: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive cluster ranges [first, last) holding at most max_rows memberships (or one bigger cluster)."""
    groups, first, total = [], 0, 0
    for c, size in enumerate(sizes):
        if c > first and total + size > max_rows:
            groups.append((first, c))
            first, total = c, 0
        total += int(size)
    if len(sizes):
        groups.append((first, len(sizes)))
    return groups


def _resolve(store: Store, tmp: str, keep_by: list[str], folder: str | None) -> dict:
    left, right = load_edges(sorted(Path(tmp).glob("pairs-*.npy")))
    if len(left):  # a pair sharing two of its rows' nearest clusters is found in both
        pairs = np.unique(np.stack([left, right], axis=1), axis=0)
        left, right = pairs[:, 0], pairs[:, 1]
    nodes: set[str] = set()
    groups = resolve(store, left, right, keep_by, Path(folder) if folder else None, nodes)
    return {**groups, "pairs": len(left), "nodes": sorted(nodes)}


def semdedup_partitioned(
    rows: AliveRows, cfg: SemDedupConfig, folder: Path, *, seed: int, keep_by: list[str], budget_bytes: int, nodes: set
) -> tuple[dict, dict[int, int]]:
    store, tmp = rows.store, folder / "tmp"
    n = len(rows)
    stats = {"in": n, "kept": n, "rejected": {}, "pairs": 0, "clusters": 0}
    if n == 0:
        return stats, {}
    k = cfg.clusters_for(n)
    centroids = str(tmp / "centroids.npy")
    k = run_tasks(
        [select_task(_fit).remote(rows, k, seed, cfg.kmeans_iterations, centroids)], desc="semdedup: fit", nodes=nodes
    )[0]
    m = cfg.clusters_per_row
    task = rows.kmeans_task(_assign_part)
    offsets = store.offsets
    sizes = np.zeros(k, dtype=np.int64)
    parts = [p for p in range(len(store.counts)) if rows.alive_counts[p]]
    for counts in run_tasks(
        [task.remote(*rows.part_args(p), int(offsets[p]), centroids, m, str(tmp)) for p in parts],
        desc="semdedup: assign",
        nodes=nodes,
    ):
        sizes += counts
    max_rows = max(1, budget_bytes // (2 * 4 * max(store.dim, 1)))  # float32 members, with room for the products
    groups = cluster_groups(sizes, max_rows)
    pair_task = select_task(_group_pairs)
    run_tasks(
        [pair_task.remote(store, str(tmp), a, b, cfg.min_cosine, g) for g, (a, b) in enumerate(groups)],
        desc=f"semdedup: pairs ({len(groups)} groups)",
        nodes=nodes,
    )
    audit = cfg.mode == "audit"
    result = run_tasks(
        [select_task(_resolve).remote(store, str(tmp), keep_by, None if audit else str(folder))],
        desc="semdedup: components",
        nodes=nodes,
    )[0]
    nodes.update(result["nodes"])
    removed = result["removed"]
    stats.update(pairs=result["pairs"], clusters=k, groups=len(groups), largest_cluster=int(sizes.max()))
    if audit:
        stats["would_reject"] = {RejectReason.DUP_EMBEDDING: removed} if removed else {}
        return stats, {}
    stats.update(kept=n - removed, rejected={RejectReason.DUP_EMBEDDING: removed} if removed else {})
    return stats, result["removed_per_part"]
