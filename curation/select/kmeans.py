"""Spherical k-means shared by embedding dedup and hierarchical clustering: faiss fits on a bounded sample, assignment
streams over every row in chunks.

Spherical because the inputs are L2-normalised CLIP embeddings compared by cosine: faiss then renormalises the
centroids after every iteration and assigns by inner product, so "nearest centroid" means "highest cosine", and the
centroids stay on the unit sphere, where the next level of hierarchical k-means clusters them like data points.
SemDeDup (Abbas et al. 2023) clusters with spherical k-means too.

Seeding, never faiss's default uniform pick: a uniform pick misses groups smaller than n / k (a rare concept gets no
centroid and is merged into a neighbour). On planted blobs (d = 32, one 50x bigger) uniform seeding kept ~6 of 11
blobs apart, AFK-MC² ~10.6. Two D²-style seedings:
- "afk-mc2": faiss's fast Markov-chain approximation of k-means++ (the default; SemDeDup uses it): 250 centroids
  from 64k x 768 in ~0.1 s;
- "kmeans++": greedy k-means++, each seed the best of 2 + ln k candidates drawn by D² (the variant scikit-learn and
  Vo et al. 2024 use). Hierarchical k-means needs it: with ~20 rows per cluster Lloyd barely moves centroids from one
  group to another, so the seeding decides how many clusters each group gets, and only the greedy pick stops
  splitting a dense group ever finer. Planted mixture of `bench/hkmeans_sampling.py --planted` (seed 0, leaf level
  only, 1,000 clusters of which the largest component's proportional share is 367), clusters in that component
  before / after 10 resampling steps: greedy 219 / 26-35, AFK-MC² 329 / 156-169, non-greedy k-means++ (faiss's or
  one candidate per seed) 298-310 / 120-154, whether spherical or Euclidean, 20 or 50 Lloyd iterations. It costs
  k * (2 + ln k) distance rows over the sample, about 2 + ln k Lloyd iterations' worth: 1,089 seeds from
  21,770 x 64 in ~1 s on one core.

Determinism: faiss seeds its initialisation with `seed`; the training sample is drawn here with a numpy generator of
the same seed. Fits with the same seed and input gave bit-identical centroids and labels with 1 and with 2 OpenMP
threads (and the 10^6-row bench repeats its cluster sizes exactly), so the thread count is left alone; distances
differed in the last bits (4e-7, planted mixture). The greedy seeding's numpy products gave the same seeds with 1
and 2 BLAS threads.
Distances do change in the last bits with ASSIGN_CHUNK (BLAS blocking): keep it fixed to reproduce a run bit for bit.

GPUs: every faiss index here (training and assignment) moves to the GPUs the process sees when faiss was built with
GPU support (faiss-gpu); the CPU wheel reports none. Under Ray a task sees GPUs only when it asks for them
(`select.task_gpus`, `curation.select.alive_rows`).
"""

import math
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm import tqdm

ASSIGN_CHUNK = 65_536  # rows converted to float32 at a time: 192 MiB at d = 768
SEEDINGS = ("auto", "afk-mc2", "kmeans++")
# Greedy k-means++ seeds from at most k * this rows: its cost is k * (2 + ln k) passes over them, memory-bound, so
# k^2 * this * d reads. 32 keeps the planted mixture's fits (~20 rows per leaf) on every row they train on.
SEED_ROWS_PER_CENTROID = 32
# "auto" takes greedy k-means++ up to this many reads, k * seed rows * d (1,000 leaves of 768-d: 2.5e10, ~13 s a fit
# on 2 cores, BENCHMARKS.md "Select at scale"), and AFK-MC² above, where greedy seeding would outgrow the fit itself
GREEDY_MAX_READS = 4 * 10**10


def centroid_index(centroids: np.ndarray, metric: str = "ip") -> faiss.Index:
    """Exact index over the centroids ('ip': inner product, 'l2': squared L2), on every visible GPU if faiss has any."""
    if metric not in ("ip", "l2"):
        raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
    index = faiss.IndexFlatIP(centroids.shape[1]) if metric == "ip" else faiss.IndexFlatL2(centroids.shape[1])
    if faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


@dataclass(frozen=True)
class KMeansResult:
    centroids: np.ndarray  # [k, d] float32, unit norm
    labels: np.ndarray  # [n] int64, index of the nearest centroid
    distances: np.ndarray  # [n] float32, cosine distance 1 - <x, centroid>


def greedy_kmeans_plusplus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k seed rows of x [n, d] float32 (k <= n): greedy k-means++. The first seed is uniform; each next one
    is the candidate, out of 2 + ln k drawn with probability proportional to the squared distance to the nearest seed
    so far, that leaves the lowest sum of those squared distances."""
    trials = 2 + int(math.log(k))
    norms = np.einsum("ij,ij->i", x, x)  # [n]
    seeds = np.empty(k, dtype=np.int64)
    seeds[0] = rng.integers(len(x))
    nearest = np.maximum(norms - 2 * (x @ x[seeds[0]]) + norms[seeds[0]], 0)  # [n] squared distance to the seeds
    for i in range(1, k):
        cumulative = np.cumsum(nearest, dtype=np.float64)
        if cumulative[-1] > 0:
            candidates = np.searchsorted(cumulative, rng.random(trials) * cumulative[-1], side="right")
            candidates = np.minimum(candidates, len(x) - 1)  # rounding at the top end
        else:  # every row sits on a seed (duplicates): any row will do
            candidates = rng.integers(len(x), size=trials)
        # This loop is the seeding's whole cost, so as few passes over [n, trials] as can be: with
        # |x_i - c|^2 = |x_i|^2 + |c|^2 - 2 <x_i, c>, min(|x_i - c|^2, nearest_i) - |x_i|^2 is
        # min(|c|^2 - 2 <x_i, c>, nearest_i - |x_i|^2)
        shifted = x @ (-2 * x[candidates]).T  # [n, trials]
        shifted += norms[candidates]
        np.minimum(shifted, (nearest - norms)[:, None], out=shifted)
        best = int(np.einsum("ij->j", shifted).argmin())  # lowest potential, less the constant sum of |x_i|^2
        seeds[i] = candidates[best]
        nearest = np.maximum(shifted[:, best] + norms, 0)
    return seeds


def fit_centroids(
    x: np.ndarray,
    k: int,
    *,
    seed: int,
    iterations: int = 20,
    max_points_per_centroid: int = 256,
    rows: np.ndarray | None = None,
    seeding: str = "afk-mc2",
) -> np.ndarray:
    """Spherical k-means centroids [min(k, rows), d] of x (or of x[rows]); at most k * max_points_per_centroid rows,
    drawn at random, are converted to float32 and trained on. x is only read as x[sorted unique int64 rows], except
    rows spread over parts whose sample would pass their `fit_budget_rows`: those are fitted on the sample that
    fits, then refined by `iterations` Lloyd steps over every row (`x.lloyd_fit`)."""
    if seeding not in SEEDINGS:
        raise ValueError(f"seeding must be one of {SEEDINGS}, got {seeding!r}")
    subset = rows
    rows = np.arange(len(x), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise ValueError("k-means needs at least one row")
    k = min(k, len(rows))
    budget = k * max_points_per_centroid
    if hasattr(x, "lloyd_fit") and min(len(rows), budget) > x.fit_budget_rows:
        # Rows spread over parts (curation.select.alive_rows) and a sample too big for one task: fit on the sample
        # that fits, then run the Lloyd steps over every row as one Ray task per part
        if k > x.fit_budget_rows:
            raise ValueError(
                f"{k} centroids do not fit the k-means memory budget ({x.fit_budget_rows} rows): "
                "raise select.memory_gib or lower the cluster counts"
            )
        local = x.fit_budget_rows // k
        start = fit_centroids(
            x, k, seed=seed, iterations=iterations, max_points_per_centroid=local, rows=subset, seeding=seeding
        )
        return x.lloyd_fit(start, iterations=iterations, subset=None if subset is None else rows)
    rng = np.random.default_rng(seed)
    if len(rows) > budget:  # sorted: reading rows in order is kinder to a memory-mapped x
        rows = np.sort(rng.choice(rows, budget, replace=False))
    if hasattr(x, "train_sample"):  # rows spread over parts: read and trained where the GPUs are, if any
        return x.train_sample(rows, k, seed=seed, iterations=iterations, seeding=seeding, rng=rng)
    return train_sample(x[rows], k, seed=seed, iterations=iterations, seeding=seeding, rng=rng)


def train_sample(
    sample: np.ndarray, k: int, *, seed: int, iterations: int, seeding: str, rng: np.random.Generator
) -> np.ndarray:
    """Spherical k-means centroids [k, d] of a bounded sample (k <= len(sample)), seeded as `seeding` says."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    kmeans = faiss.Kmeans(
        sample.shape[1],
        k,
        niter=iterations,
        seed=seed,
        spherical=True,
        init_method=faiss.ClusteringInitMethod_AFK_MC2,  # unused when seeds are given
        max_points_per_centroid=len(sample),  # never reached: the sample is already bounded
        min_points_per_centroid=1,  # small levels (centroids of centroids) are legitimately sparse
        gpu=faiss.get_num_gpus(),  # how many to spread over; 0 (the CPU wheel) trains on CPU
        verbose=False,
    )
    if seeding == "auto":
        seeding = (
            "kmeans++"
            if k * min(len(sample), k * SEED_ROWS_PER_CENTROID) * sample.shape[1] <= GREEDY_MAX_READS
            else "afk-mc2"
        )
    if seeding == "kmeans++":
        pool = sample
        if len(sample) > k * SEED_ROWS_PER_CENTROID:  # seeds need a few rows per centroid, not the whole sample
            pool = sample[np.sort(rng.choice(len(sample), k * SEED_ROWS_PER_CENTROID, replace=False))]
        start = pool[greedy_kmeans_plusplus(pool, k, rng)]
        start /= np.maximum(np.linalg.norm(start, axis=1, keepdims=True), 1e-12)  # spherical: unit seeds
        kmeans.train(sample, init_centroids=start)
    else:
        kmeans.train(sample)
    return kmeans.centroids


def assign(x: np.ndarray, centroids: np.ndarray, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (by inner product) of every row and its cosine distance, ASSIGN_CHUNK rows at a time."""
    if hasattr(x, "assign_all"):  # rows spread over parts (curation.select.alive_rows): one Ray task per part
        return x.assign_all(centroids, metric="ip", progress=progress)
    index = centroid_index(centroids)
    labels = np.empty(len(x), dtype=np.int64)
    distances = np.empty(len(x), dtype=np.float32)
    starts = range(0, len(x), ASSIGN_CHUNK)
    for start in tqdm(starts, desc="assign", unit="chunk", disable=not progress or len(starts) < 2):
        chunk = np.ascontiguousarray(x[start : start + ASSIGN_CHUNK], dtype=np.float32)
        similarity, nearest = index.search(chunk, 1)
        labels[start : start + len(chunk)] = nearest[:, 0]
        distances[start : start + len(chunk)] = 1.0 - similarity[:, 0]
    return labels, distances


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    seed: int,
    iterations: int = 20,
    max_points_per_centroid: int = 256,
    progress: bool = False,
) -> KMeansResult:
    """Fit on a sample (k clamped to the number of rows), then assign every row."""
    centroids = fit_centroids(x, k, seed=seed, iterations=iterations, max_points_per_centroid=max_points_per_centroid)
    labels, distances = assign(x, centroids, progress=progress)
    return KMeansResult(centroids, labels, distances)
