"""Spherical k-means shared by embedding dedup and hierarchical clustering: faiss fits on a bounded sample, assignment
streams over every row in chunks.

Spherical because the inputs are L2-normalised CLIP embeddings compared by cosine: faiss then renormalises the
centroids after every iteration and assigns by inner product, so "nearest centroid" means "highest cosine", and the
centroids stay on the unit sphere, where the next level of hierarchical k-means clusters them like data points.
SemDeDup (Abbas et al. 2023) clusters with spherical k-means too.

Seeding is AFK-MC² (faiss's fast approximation of k-means++), not faiss's default uniform pick: a uniform pick
misses groups smaller than n / k (a rare concept gets no centroid and is merged into a neighbour), and D²-style
seeding is what lets the resampling steps of hierarchical k-means move centroids out of dense regions. On planted
blobs (d = 32, one 50x bigger) uniform seeding kept ~6 of 11 blobs apart, AFK-MC² ~10.6; seeding 250 centroids
from 64k x 768 took ~0.1 s with AFK-MC², ~4 s with exact k-means++.

Determinism: faiss seeds its initialisation with `seed`; the training sample is drawn here with a numpy generator of
the same seed. Fits with the same seed and input gave bit-identical centroids, labels and distances with 1 and with
2 OpenMP threads (and the 10^6-row bench repeats its cluster sizes exactly), so the thread count is left alone.
Distances do change in the last bits with ASSIGN_CHUNK (BLAS blocking): keep it fixed to reproduce a run bit for bit.
"""

from dataclasses import dataclass

import faiss
import numpy as np
from tqdm import tqdm

ASSIGN_CHUNK = 65_536  # rows converted to float32 at a time: 192 MiB at d = 768


@dataclass(frozen=True)
class KMeansResult:
    centroids: np.ndarray  # [k, d] float32, unit norm
    labels: np.ndarray  # [n] int64, index of the nearest centroid
    distances: np.ndarray  # [n] float32, cosine distance 1 - <x, centroid>


def fit_centroids(
    x: np.ndarray,
    k: int,
    *,
    seed: int,
    iterations: int = 20,
    max_points_per_centroid: int = 256,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Spherical k-means centroids [min(k, rows), d] of x (or of x[rows]); at most k * max_points_per_centroid rows,
    drawn at random, are converted to float32 and trained on."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("k-means needs at least one row")
    k = min(k, len(rows))
    budget = k * max_points_per_centroid
    if len(rows) > budget:  # sorted: reading rows in order is kinder to a memory-mapped x
        rows = np.sort(np.random.default_rng(seed).choice(rows, budget, replace=False))
    sample = np.ascontiguousarray(x[rows], dtype=np.float32)
    kmeans = faiss.Kmeans(
        sample.shape[1],
        k,
        niter=iterations,
        seed=seed,
        spherical=True,
        init_method=faiss.ClusteringInitMethod_AFK_MC2,
        max_points_per_centroid=max_points_per_centroid,  # never reached: the sample is already bounded
        min_points_per_centroid=1,  # small levels (centroids of centroids) are legitimately sparse
        verbose=False,
    )
    kmeans.train(sample)
    return kmeans.centroids


def assign(x: np.ndarray, centroids: np.ndarray, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (by inner product) of every row and its cosine distance, ASSIGN_CHUNK rows at a time."""
    if hasattr(x, "assign_all"):  # rows spread over parts (curation.select.alive_rows): one Ray task per part
        return x.assign_all(centroids, metric="ip", progress=progress)
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
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
