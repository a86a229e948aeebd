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

Where this differs from the paper's code, measured on the planted mixture of `bench/hkmeans_sampling.py --planted`
(50 components, 8,000 down to 40 rows, 64-d; 20 % kept; "share" = the largest component's leaves over its
proportional share, entropy of the kept rows over components, at most 0.986):
- k-means is spherical (cosine, unit centroids) where the paper's is Euclidean; the seeding is the same greedy
  k-means++ (kmeans.py: that, not the metric, is what decides how far resampling moves centroids). Leaf level alone,
  1,000 clusters, 10 steps, seed 0: 26-28 clusters left in the largest component spherical, 35 Euclidean.
- Levels above the leaves cluster those unit centroids, where the paper clusters the raw means. With Euclidean
  k-means throughout, raw means gave entropy 0.89-0.93 against 0.95-0.96 normalised (levels 1,000 / 100 / 10) and
  0.969-0.970 against 0.972-0.978 (1,000 / 200 / 40). The mean of a leaf of a few rows lies far from its concept;
  raw, such means gave small concepts up to 10 of the 100 middle clusters, the largest one 1.
The leaf-level input is only read through len(x), x.shape, x[rows] for a bounded, sorted training sample, and full
passes of kmeans.assign, so that it can be a store whose assignment runs elsewhere.
"""

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from common.config import bounded, check_ranges
from curation.select.kmeans import SEEDINGS, assign, fit_centroids


@dataclass(frozen=True)
class HierarchyConfig:
    # Defaults: the paper's regime (its configs: ~20 rows per leaf, 5-20 children per cluster, 10 resampling steps, r
    # half the mean cluster size). Planted mixture, seeds 0-7: share 0.05-0.08, entropy 0.971-0.981, >= 40 rows kept
    # of every component (the smallest has 40). Before (leaf_size 1000, branching 10, 3 steps, r share 0.25, AFK-MC²
    # seeding): 22 leaves for 50 components, entropy 0.88-0.94, the least kept component down to 1-22 rows.
    levels: int = bounded(3, ge=1)  # leaf, middle and top level
    # explicit k per level, leaf level first; None: leaf_size and branching decide
    clusters: list[int] | None = bounded(None, ge=1)
    # Mean rows per leaf cluster, k_1 = ceil(n / leaf_size). Planted mixture (levels by branching 5): 20 -> entropy
    # 0.971-0.981 (8 seeds), 25 -> 0.972-0.976, 50 -> 0.960-0.971 (3 seeds). Cost: fits and assignment grow with
    # n * k_1, so n^2 at a fixed leaf_size: 50M leaves at 10^9 rows is out of reach, set `clusters` there (the paper:
    # 10M / 500k / 50k / 10k for 743M images)
    leaf_size: int = bounded(20, ge=1)
    # k_{t+1} = ceil(k_t / branching). What caps balance is the top level: concepts merged into one top cluster share
    # its budget. Planted mixture, 1,000 leaves: top 10 clusters -> entropy 0.945-0.965, 40 -> 0.975-0.979, 100-200
    # (two levels) -> 0.985-0.986
    branching: int = bounded(5, ge=1)
    # Lloyd iterations per fit, as SemDedupConfig (faiss's default is 25, the paper's 50): 50 gave the same balance on
    # the planted mixture, the seeding having done the work
    kmeans_iterations: int = bounded(20, ge=1)
    # Each fit trains on <= k * this rows. bench/hkmeans_sampling.py (10^6 x 768, leaf_size 1000, 3 steps): faiss's
    # default 256 took 223 s against 178-206 s and balanced the blobs no better; 64 took 119 s, worse
    max_points_per_centroid: int = bounded(128, ge=1)
    # The paper's m, per level. Planted mixture (levels ~1,000 / 200 / 40): 0 / 3 / 10 steps leave the largest
    # component share 0.60-0.62 / 0.16-0.19 / 0.07-0.08 (and with 0 steps a component down to 5 rows); each step is one
    # fit and one full assignment pass
    resampling_steps: int = bounded(10, ge=0)
    resample_points: list[int] | None = bounded(None, ge=1)  # the paper's r per level, leaf first; None: by share
    # Auto r_t = ceil(share * mean cluster size at level t), at least 2: r must sit below the size of dense clusters,
    # or every cluster keeps its full weight and nothing moves. The paper's half: planted share 0.07-0.08, entropy
    # 0.975-0.979; 0.25 shrinks the largest component further (0.02-0.04, fewer leaves than an even split per
    # concept gives it) for no gain in entropy (0.974-0.978)
    resample_share: float = bounded(0.5, gt=0, le=1)
    # "kmeans++" (greedy, kmeans.py says why it matters), "afk-mc2" (planted: share 0.33-0.46, a component down to 24
    # rows), or "auto": greedy while k^2 * 32 * d stays under kmeans.GREEDY_MAX_READS (k ~1,000 at 768-d), else
    # AFK-MC², so a level of 10^4+ clusters is not held up by its seeding
    seeding: str = "auto"

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.seeding not in SEEDINGS:
            raise ValueError(f"seeding must be one of {SEEDINGS}, got {self.seeding!r}")
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
    fit = {
        "iterations": config.kmeans_iterations,
        "max_points_per_centroid": config.max_points_per_centroid,
        "seeding": config.seeding,
    }
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
    """Cluster `embeddings` [n, d] (L2-normalised, float16 or float32). Read only as len(embeddings), x[rows] for a
    training sample (sorted unique int64, at most k_1 * max_points_per_centroid rows) and whole passes of
    kmeans.assign, which converts float16 in chunks: never copied whole to float32."""
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
