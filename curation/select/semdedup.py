"""Embedding near-duplicates, SemDeDup style (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale
through semantic deduplication"): spherical k-means, then every pair inside a cluster with cosine >= min_cosine,
connected components of those pairs, and the best-ranked row of each component is kept.

Pairs are only looked for inside k-means clusters: that is what makes the search linear in the data (sum of squared
cluster sizes) instead of quadratic. With one cluster per row (the original SemDeDup), two near copies on either side
of a border between centroids are never compared, and a copy group centred between two topics loses pairs. So every
row joins its `clusters_per_row` (m) nearest clusters, each cluster is searched over all its members, and a pair
found in two clusters counts once: a pair is found when its rows share one of their m nearest clusters. Clusters then
hold m times as many rows, so the search does ~m^2 as many dot products. Copy groups between two of 20 topics
(~1,350 rows, 20 clusters, 10 seeds): recall of the brute-force pairs at cosine >= 0.95 was 0.91-0.97 with m = 1
(0.61-0.71 with 20k rows), 1.0 with m = 2 and 3; the sum of squared cluster sizes grew 3.7-3.9x with m = 2, 8.2-8.6x
with m = 3.
"""

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from common.config import bounded, check_ranges
from curation.select.components import component_labels, keep_best
from curation.select.kmeans import ASSIGN_CHUNK, centroid_index, fit_centroids

BLOCK_ELEMENTS = 1 << 24  # similarity entries per matrix product: 64 MiB of float32, whatever the cluster size


@dataclass(frozen=True)
class SemDedupConfig:
    # None: ceil(n / 1000), ~1000 rows per cluster. The pair search costs n * mean cluster size dot products, 10^9
    # per million rows at 1000; bigger clusters miss fewer straddling pairs but cost proportionally more (SemDeDup
    # used 50k clusters for LAION-440M, ~9k rows per cluster)
    num_clusters: int | None = bounded(None, ge=1)
    # SemDeDup eps = 0.05 (1 - cosine), the Humans-1B default (DESIGN.md "Defaults")
    min_cosine: float = bounded(0.95, ge=-1, le=1)
    kmeans_iterations: int = bounded(20, ge=1)  # Humans-1B default, shared with HierarchyConfig; faiss's is 25
    # each row is searched in its m nearest clusters (clamped to the number of clusters): 2 finds the pairs split by
    # a border between two centroids, at ~m^2 = 4x the search cost of 1 (the original SemDeDup)
    clusters_per_row: int = bounded(2, ge=1)
    # audit: find the groups and count them as would_reject, remove nothing. The groups are only as good as the
    # CLIP model: the offline demo's random-weight CLIP finds most images alike, so it audits
    mode: str = "reject"

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.mode not in ("reject", "audit"):
            raise ValueError(f"select.semdedup.mode must be 'reject' or 'audit', got {self.mode!r}")

    def clusters_for(self, n: int) -> int:
        wanted = self.num_clusters if self.num_clusters is not None else math.ceil(n / 1000)
        return max(1, min(wanted, n))


@dataclass(frozen=True)
class SemDedupResult:
    dup_of: np.ndarray  # [n] int64: -1 for a kept row, else the index of the row kept in its place
    pairs: int  # distinct pairs with cosine >= min_cosine whose rows share one of their nearest clusters
    removed: int  # rows with dup_of != -1
    clusters: int  # k-means clusters searched


def nearest_clusters(x: np.ndarray, centroids: np.ndarray, m: int) -> np.ndarray:
    """[n, m] int64: the m centroids with the highest inner product with each row of x, nearest first; ASSIGN_CHUNK
    rows are converted to float32 at a time."""
    if not 1 <= m <= len(centroids):
        raise ValueError(f"m must be between 1 and the number of centroids ({len(centroids)}), got {m}")
    index = centroid_index(centroids)
    nearest = np.empty((len(x), m), dtype=np.int64)
    for start in range(0, len(x), ASSIGN_CHUNK):
        chunk = np.ascontiguousarray(x[start : start + ASSIGN_CHUNK], dtype=np.float32)
        nearest[start : start + len(chunk)] = index.search(chunk, m)[1]
    return nearest


def cluster_pairs(x: np.ndarray, min_cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j of rows of x (unit norm) with <x_i, x_j> >= min_cosine, as local row indices; the s x s
    similarity matrix is computed BLOCK_ELEMENTS entries at a time."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    block = max(1, BLOCK_ELEMENTS // max(len(x), 1))
    left, right = [], []
    for start in range(0, len(x), block):
        similarity = x[start : start + block] @ x.T  # [block, s]
        rows, cols = np.nonzero(similarity >= min_cosine)
        rows += start
        upper = cols > rows  # each pair once, never a row with itself
        left.append(rows[upper])
        right.append(cols[upper])
    if not left:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64)


def semdedup(
    embeddings: np.ndarray, rank: np.ndarray, config: SemDedupConfig, *, seed: int, progress: bool = True
) -> SemDedupResult:
    """Near-duplicate groups of `embeddings` [n, d] (L2-normalised); `rank` [n]: 0 = the row to keep first."""
    n = len(embeddings)
    if len(rank) != n:
        raise ValueError(f"rank has {len(rank)} entries for {n} embeddings")
    if n == 0:
        return SemDedupResult(np.zeros(0, dtype=np.int64), 0, 0, 0)
    centroids = fit_centroids(embeddings, config.clusters_for(n), seed=seed, iterations=config.kmeans_iterations)
    k = len(centroids)
    # one assignment pass for all m clusters (column 0 is kmeans.assign's label)
    labels = nearest_clusters(embeddings, centroids, min(config.clusters_per_row, k)).reshape(-1)  # [n * m]
    order = np.argsort(labels, kind="stable")  # stable: members of a cluster stay in increasing row order
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    row_of = order // (len(labels) // n)
    keys = []  # i * n + j for a pair i < j: the same pair found in two clusters is one key
    for c in tqdm(range(k), desc="semdedup", unit="cluster", disable=not progress):
        members = row_of[bounds[c] : bounds[c + 1]]
        if len(members) < 2:
            continue
        i, j = cluster_pairs(embeddings[members], config.min_cosine)
        keys.append(members[i] * n + members[j])
    keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
    left, right = np.divmod(keys, n)
    kept = keep_best(component_labels(n, left, right), rank)
    dup_of = np.where(kept == np.arange(n), -1, kept).astype(np.int64)
    return SemDedupResult(dup_of, pairs=len(keys), removed=int((dup_of >= 0).sum()), clusters=k)
