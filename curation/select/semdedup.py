"""Embedding near-duplicates, SemDeDup style (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale
through semantic deduplication"): spherical k-means, then every pair inside a cluster with cosine >= min_cosine,
connected components of those pairs, and the best-ranked row of each component is kept.

Pairs are only looked for inside a k-means cluster, by design: that is what makes the search linear in the data
(sum of squared cluster sizes) instead of quadratic. Two near copies split across clusters are missed: that needs
them to sit on a boundary between centroids, which happens where the data has no cluster structure (3 clusters over
2,000 structureless random vectors split 7 of 100 planted copy groups; over topic-structured ones, none).
"""

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from common.config import bounded, check_ranges
from curation.select.components import component_labels, keep_best
from curation.select.kmeans import kmeans

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
    pairs: int  # pairs with cosine >= min_cosine found inside clusters
    removed: int  # rows with dup_of != -1
    clusters: int  # k-means clusters searched


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
    k = config.clusters_for(n)
    labels = kmeans(embeddings, k, seed=seed, iterations=config.kmeans_iterations, progress=progress).labels
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    left, right = [], []
    for c in tqdm(range(k), desc="semdedup", unit="cluster", disable=not progress):
        members = order[bounds[c] : bounds[c + 1]]
        if len(members) < 2:
            continue
        i, j = cluster_pairs(embeddings[members], config.min_cosine)
        left.append(members[i])
        right.append(members[j])
    left = np.concatenate(left) if left else np.zeros(0, dtype=np.int64)
    right = np.concatenate(right) if right else np.zeros(0, dtype=np.int64)
    kept = keep_best(component_labels(n, left, right), rank)
    dup_of = np.where(kept == np.arange(n), -1, kept).astype(np.int64)
    return SemDedupResult(dup_of, pairs=len(left), removed=int((dup_of >= 0).sum()), clusters=k)
