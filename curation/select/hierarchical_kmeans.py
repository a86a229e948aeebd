"""Hierarchical k-means with resampling-clustering: Vo et al. 2024, "Automatic Data Curation for Self-Supervised
Learning: A Clustering-Based Approach" (TMLR 2024, arXiv 2405.15613), Section 3 and its Algorithm 1.

Plain k-means puts its centroids where the points are dense, so a dominant concept takes most clusters and a rare one
may get none. The paper flattens that in two ways, and this module does both:
- levels: level 1 clusters the embeddings, level t clusters the centroids of level t-1, which are spread far more
  evenly over the data's support than the points are;
- resampling-clustering, m times per level: from every cluster keep the r members closest to its centroid, run
  k-means afresh on the union of those (every cluster now weighs at most r, whatever its density), and reassign all
  the level's points to the new centroids.
A point's id at level t + 1 is the level-(t + 1) cluster of its level-t centroid, so the levels form a tree.
"""

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from common.config import bounded, check_ranges
from curation.select.kmeans import assign, fit_centroids


@dataclass(frozen=True)
class HierarchyConfig:
    levels: int = bounded(3, ge=1)  # Humans-1B default: leaf, middle and top level
    # explicit k per level, leaf level first; None: leaf_size and branching decide
    clusters: list[int] | None = bounded(None, ge=1)
    leaf_size: int = bounded(1000, ge=1)  # mean points per leaf cluster: k_1 = ceil(n / leaf_size), ~1M leaves at 1B
    branching: int = bounded(10, ge=1)  # k_{t+1} = ceil(k_t / branching): ~10 children per cluster, Humans-1B default
    kmeans_iterations: int = bounded(20, ge=1)  # Lloyd iterations per fit, as SemDedupConfig; faiss's default is 25
    # Each fit trains on <= k * this rows. bench/hkmeans_sampling.py (10^6 x 768):
    # faiss's default 256 took 223 s against 178-206 s and balanced the blobs no better (below); 64 took 119 s, worse
    max_points_per_centroid: int = bounded(128, ge=1)
    # The paper's m, per level. Bench, balance over the planted blobs after sampling 25 %:
    # entropy 0.903 / 0.929 / 0.938 and Gini 0.611 / 0.546 / 0.530 with 0 / 1 / 3 steps (52 / 77 / 178-206 s)
    resampling_steps: int = bounded(3, ge=0)
    resample_points: list[int] | None = bounded(None, ge=1)  # the paper's r per level, leaf first; None: by share
    # Auto r_t = ceil(share * mean cluster size at level t), at least 2: r must sit well below the size of dense
    # clusters, or every cluster keeps its full weight and nothing moves (share 1 on the planted blobs: ~15 of 30
    # centroids left in the big blob, 0.25: ~5)
    resample_share: float = bounded(0.25, gt=0, le=1)

    def __post_init__(self) -> None:
        check_ranges(self)
        for key in ("clusters", "resample_points"):
            value = getattr(self, key)
            if value is not None and len(value) != self.levels:
                raise ValueError(f"{key} must list {self.levels} values (one per level, leaf first), got {value}")

    def clusters_for(self, n: int) -> list[int]:
        """k per level, leaf first; each at most the number of points clustered at that level."""
        wanted = list(self.clusters) if self.clusters is not None else [math.ceil(n / self.leaf_size)]
        while len(wanted) < self.levels:
            wanted.append(math.ceil(wanted[-1] / self.branching))
        ks, points = [], n
        for k in wanted:
            ks.append(max(1, min(k, points)))
            points = ks[-1]
        return ks

    def resample_points_for(self, level: int, points: int, k: int) -> int:
        if self.resample_points is not None:
            return self.resample_points[level]
        return max(2, math.ceil(self.resample_share * points / k))


@dataclass(frozen=True)
class Hierarchy:
    centroids: list[np.ndarray]  # per level, leaf first: [k_t, d] float32, unit norm
    level_ids: np.ndarray  # [n, L] int32: cluster of every point at every level, leaf first
    leaf_distance: np.ndarray  # [n] float32: cosine distance of every point to its leaf centroid

    @property
    def clusters(self) -> list[int]:
        return [len(c) for c in self.centroids]


def closest_per_cluster(labels: np.ndarray, distances: np.ndarray, r: int) -> np.ndarray:
    """Sorted indices of the (at most) r members of every cluster closest to its centroid; ties by index."""
    order = np.lexsort((distances, labels))
    sorted_labels = labels[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    return np.sort(order[rank < r])


def cluster_level(
    x: np.ndarray, k: int, r: int, config: HierarchyConfig, *, seed: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One level of Algorithm 1: k-means on x, then `resampling_steps` rounds of k-means on the r points closest to
    each centroid. Returns centroids, labels and distances of every row of x."""
    fit = {"iterations": config.kmeans_iterations, "max_points_per_centroid": config.max_points_per_centroid}
    centroids = fit_centroids(x, k, seed=seed, **fit)
    labels, distances = assign(x, centroids, progress=progress)
    for step in range(config.resampling_steps):
        rows = closest_per_cluster(labels, distances, r)
        centroids = fit_centroids(x, k, seed=seed + 1 + step, rows=rows, **fit)  # afresh: seeding spreads them
        labels, distances = assign(x, centroids, progress=progress)
    return centroids, labels, distances


def hierarchical_kmeans(
    embeddings: np.ndarray, config: HierarchyConfig, *, seed: int, progress: bool = True
) -> Hierarchy:
    """Cluster `embeddings` [n, d] (L2-normalised; float16 is read in chunks, never copied whole to float32)."""
    n = len(embeddings)
    if n == 0:
        raise ValueError("hierarchical_kmeans needs at least one embedding")
    ks = config.clusters_for(n)
    points, ids = embeddings, None
    centroids, level_ids = [], np.empty((n, config.levels), dtype=np.int32)
    for level in tqdm(range(config.levels), desc="hierarchical k-means", unit="level", disable=not progress):
        r = config.resample_points_for(level, len(points), ks[level])
        level_seed = seed + 1000 * level  # distinct streams per level, reproducible from one seed
        c, labels, distances = cluster_level(points, ks[level], r, config, seed=level_seed, progress=progress)
        if level == 0:
            ids, leaf_distance = labels, distances
        else:
            ids = labels[ids]  # a point follows its level-(t-1) centroid
        level_ids[:, level] = ids
        centroids.append(c)
        points = c
    return Hierarchy(centroids, level_ids, leaf_distance)
