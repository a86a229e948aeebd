import numpy as np
import pytest

from curation.select import hierarchical_kmeans as hierarchical_kmeans_module
from curation.select import kmeans as kmeans_module
from curation.select.hierarchical_kmeans import HierarchyConfig, closest_per_cluster, hierarchical_kmeans
from curation.select.kmeans import assign, greedy_kmeans_plusplus, kmeans

D = 32


BIG, SMALL, SMALL_BLOBS = 5000, 100, 10  # one blob 50x bigger than each of the others


def unbalanced_blobs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random unit centres (cosine ~0.97 to the own centre, ~0 across), L2-normalised,
    float16; returns the embeddings and the blob of every row (blob 0 is the big one)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((SMALL_BLOBS + 1, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    blob = np.repeat(np.arange(SMALL_BLOBS + 1), [BIG] + [SMALL] * SMALL_BLOBS)
    x = centres[blob] + 0.05 * rng.standard_normal((len(blob), D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16), blob


def counts(labels: np.ndarray, blob: np.ndarray) -> np.ndarray:
    """[cluster, blob] number of rows."""
    table = np.zeros((labels.max() + 1, blob.max() + 1), dtype=np.int64)
    np.add.at(table, (labels, blob), 1)
    return table


def clusters_in_big_blob(labels: np.ndarray, blob: np.ndarray) -> int:
    table = counts(labels, blob)
    return int((table[:, 0] > table.sum(1) / 2).sum())


# 30 leaves over 6,000 rows, 6 clusters above them
CONFIG = HierarchyConfig(levels=2, leaf_size=200, branching=5)


def test_leaf_clusters_cover_the_small_blobs_too():
    x, blob = unbalanced_blobs(0)
    hierarchy = hierarchical_kmeans(x, CONFIG, seed=0, progress=False)
    table = counts(hierarchy.level_ids[:, 0], blob)
    pure = table / table.sum(1, keepdims=True) >= 0.9  # leaves (almost) all from one blob
    own_leaves = (table * pure).sum(0) / table.sum(0)  # share of each blob in leaves of its own
    assert (own_leaves >= 0.9).all(), own_leaves


def test_shapes_dtypes_and_a_consistent_tree():
    x, _ = unbalanced_blobs(1)
    hierarchy = hierarchical_kmeans(x, CONFIG, seed=1, progress=False)
    assert hierarchy.clusters == [30, 6]
    assert hierarchy.level_ids.shape == (len(x), 2) and hierarchy.level_ids.dtype == np.int32
    assert hierarchy.leaf_distance.shape == (len(x),) and hierarchy.leaf_distance.dtype == np.float32
    for centroids in hierarchy.centroids:
        assert centroids.dtype == np.float32 and centroids.shape[1] == D
        np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
    leaf, parent = hierarchy.level_ids[:, 0], hierarchy.level_ids[:, 1]
    similarity = x.astype(np.float32) @ hierarchy.centroids[0].T
    np.testing.assert_array_equal(leaf, similarity.argmax(1))  # every row sits in its nearest leaf
    np.testing.assert_allclose(hierarchy.leaf_distance, 1 - similarity.max(1), atol=1e-5)
    # the parent of a row is the parent of its leaf centroid: one parent per leaf
    leaf_parent = (hierarchy.centroids[0] @ hierarchy.centroids[1].T).argmax(1)
    np.testing.assert_array_equal(parent, leaf_parent[leaf])


def test_same_seed_same_hierarchy_other_seed_another():
    x, _ = unbalanced_blobs(2)
    first = hierarchical_kmeans(x, CONFIG, seed=3, progress=False)
    again = hierarchical_kmeans(x, CONFIG, seed=3, progress=False)
    other = hierarchical_kmeans(x, CONFIG, seed=4, progress=False)
    np.testing.assert_array_equal(first.level_ids, again.level_ids)
    np.testing.assert_array_equal(first.leaf_distance, again.leaf_distance)
    for a, b in zip(first.centroids, again.centroids, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.centroids[0], other.centroids[0])


# The paper's regime, as the defaults: 20 rows per leaf, 300 leaves of which the big blob's proportional share is 250
PAPER = HierarchyConfig(levels=2, leaf_size=20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resampling_moves_centroids_out_of_the_big_blob(seed):
    # seeds 0-5: plain k-means gives the big blob 182-203 of the 300 leaves, ten resampling-clustering steps 36-46;
    # with AFK-MC² seeding instead of greedy k-means++ the same steps leave it 142-165: centroids seldom cross from
    # one blob to another at ~20 rows per cluster, so only a seeding that prefers the sparse blobs lets resampling
    # shift them
    x, blob = unbalanced_blobs(seed)
    assert (PAPER.clusters_for(len(x)), PAPER.resampling_steps, PAPER.seeding) == ([300, 60], 10, "auto")
    in_big_blob = {}
    for name, changes in {"plain": {"resampling_steps": 0}, "defaults": {}, "afk-mc2": {"seeding": "afk-mc2"}}.items():
        hierarchy = hierarchical_kmeans(x, HierarchyConfig(**{**vars(PAPER), **changes}), seed=seed, progress=False)
        in_big_blob[name] = clusters_in_big_blob(hierarchy.level_ids[:, 0], blob)
    assert in_big_blob["plain"] >= 150, in_big_blob
    assert in_big_blob["defaults"] <= 60, in_big_blob
    assert in_big_blob["afk-mc2"] >= 120, in_big_blob


def test_auto_seeding_is_greedy_until_its_reads_pass_the_budget(monkeypatch):
    x, _ = unbalanced_blobs(0)  # 6,000 x 32
    k = 100  # the fit trains on all 6,000 rows and seeds from 3,200 (k * 32): 100 * 3,200 * 32 reads
    fits = {name: kmeans_module.fit_centroids(x, k, seed=1, seeding=name) for name in ("auto", "kmeans++", "afk-mc2")}
    np.testing.assert_array_equal(fits["auto"], fits["kmeans++"])
    assert not np.array_equal(fits["kmeans++"], fits["afk-mc2"])
    monkeypatch.setattr(kmeans_module, "GREEDY_MAX_READS", 100 * 3_200 * 32 - 1)
    np.testing.assert_array_equal(kmeans_module.fit_centroids(x, k, seed=1, seeding="auto"), fits["afk-mc2"])


def test_greedy_seeds_come_from_a_bounded_pool(monkeypatch):
    x, _ = unbalanced_blobs(0)
    pools = []
    real = kmeans_module.greedy_kmeans_plusplus
    monkeypatch.setattr(
        kmeans_module, "greedy_kmeans_plusplus", lambda pool, k, rng: pools.append(len(pool)) or real(pool, k, rng)
    )
    kmeans_module.fit_centroids(x, 10, seed=0, seeding="kmeans++")  # 320 of the 2,560 training rows
    kmeans_module.fit_centroids(x, 300, seed=0, seeding="kmeans++")  # every row: 6,000 < 300 * 32
    assert pools == [10 * kmeans_module.SEED_ROWS_PER_CENTROID, len(x)]


def test_clusters_per_level():
    assert HierarchyConfig().clusters_for(1_000_000) == [50_000, 10_000, 2_000]
    assert HierarchyConfig().clusters_for(2_500) == [125, 25, 5]
    assert HierarchyConfig(levels=2, clusters=[50, 80]).clusters_for(30) == [30, 30]  # clamped to the points
    assert HierarchyConfig(levels=1).clusters_for(1) == [1]
    with pytest.raises(ValueError, match="clusters"):
        HierarchyConfig(levels=3, clusters=[10, 2])
    with pytest.raises(ValueError, match="resample_share"):
        HierarchyConfig(resample_share=0.0)
    with pytest.raises(ValueError, match="seeding"):
        HierarchyConfig(seeding="random")


def brute_force_greedy_kmeans_plusplus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The textbook loop in float64: D² to the seeds recomputed from scratch, every candidate's potential summed."""
    x = x.astype(np.float64)
    trials = 2 + int(np.log(k))
    seeds = [int(rng.integers(len(x)))]
    for _ in range(1, k):
        nearest = ((x[:, None, :] - x[seeds][None, :, :]) ** 2).sum(-1).min(1)
        cumulative = np.cumsum(nearest)
        drawn = np.searchsorted(cumulative, rng.random(trials) * cumulative[-1], side="right")
        candidates = np.minimum(drawn, len(x) - 1)
        potentials = [np.minimum(nearest, ((x - x[c]) ** 2).sum(1)).sum() for c in candidates]
        seeds.append(int(candidates[int(np.argmin(potentials))]))
    return np.array(seeds)


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_kmeans_plusplus_matches_brute_force(seed):
    x = np.random.default_rng(seed).standard_normal((400, 8)).astype(np.float32)
    seeds = greedy_kmeans_plusplus(x, 25, np.random.default_rng(seed))
    np.testing.assert_array_equal(seeds, brute_force_greedy_kmeans_plusplus(x, 25, np.random.default_rng(seed)))


def test_greedy_kmeans_plusplus_seeds_every_separated_group_once():
    # groups of 2,000 down to 1 row, far apart: a second seed in a group gains almost nothing, a first one ~2 per row
    rng = np.random.default_rng(0)
    sizes = [2000, 500, 100, 20, 5, 3, 2, 1]
    centres = rng.standard_normal((len(sizes), 16))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    group = np.repeat(np.arange(len(sizes)), sizes)
    x = (centres[group] + 0.001 * rng.standard_normal((len(group), 16))).astype(np.float32)
    for seed in range(5):
        seeds = greedy_kmeans_plusplus(x, len(sizes), np.random.default_rng(seed))
        np.testing.assert_array_equal(np.sort(group[seeds]), np.arange(len(sizes)))


class RowsOnly:
    """The leaf level's input as a distributed store serves it: len, shape, and x[rows] for a sorted unique int64
    training sample of at most max_rows rows. Anything else (slices, conversion to an array, iteration) fails."""

    def __init__(self, array: np.ndarray, max_rows: int) -> None:
        self.array, self.max_rows, self.reads = array, max_rows, []

    def __len__(self) -> int:
        return len(self.array)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        assert isinstance(rows, np.ndarray) and rows.dtype == np.int64 and rows.ndim == 1, rows
        assert len(rows) <= self.max_rows and (np.diff(rows) > 0).all(), len(rows)
        self.reads.append(len(rows))
        return self.array[rows]

    def __array__(self, *args, **kwargs):
        raise AssertionError("whole-array conversion of the leaf-level input")


def test_leaf_level_reads_only_training_samples_and_full_passes_through_assign(monkeypatch):
    x, _ = unbalanced_blobs(5)
    leaves = CONFIG.clusters_for(len(x))[0]
    rows_only = RowsOnly(x, max_rows=leaves * CONFIG.max_points_per_centroid)  # 3,840 of the 6,000 rows
    passes = []

    def full_pass(points, centroids, **kwargs):
        if isinstance(points, RowsOnly):  # a distributed assign would take it from here
            passes.append(len(centroids))
            points = points.array
        return assign(points, centroids, **kwargs)

    monkeypatch.setattr(hierarchical_kmeans_module, "assign", full_pass)
    served = hierarchical_kmeans(rows_only, CONFIG, seed=5, progress=False)
    plain = hierarchical_kmeans(x, CONFIG, seed=5, progress=False)
    np.testing.assert_array_equal(served.level_ids, plain.level_ids)
    np.testing.assert_array_equal(served.leaf_distance, plain.leaf_distance)
    assert passes == [leaves] * (1 + CONFIG.resampling_steps)  # the first fit, then one per resampling step
    assert len(rows_only.reads) == 1 + CONFIG.resampling_steps and max(rows_only.reads) <= 3840


def test_closest_per_cluster_keeps_the_r_nearest_members():
    labels = np.array([0, 1, 0, 0, 1, 2, 0])
    distances = np.array([0.4, 0.2, 0.1, 0.3, 0.1, 0.5, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(closest_per_cluster(labels, distances, 2), [1, 2, 4, 5, 6])


def test_kmeans_clamps_k_and_assignment_streams_in_chunks(monkeypatch):
    x, _ = unbalanced_blobs(3)
    few = kmeans(x[:7], 50, seed=0)
    assert few.centroids.shape == (7, D)
    result = kmeans(x, 12, seed=0)
    monkeypatch.setattr(kmeans_module, "ASSIGN_CHUNK", 1000)
    labels, distances = assign(x, result.centroids)
    np.testing.assert_array_equal(labels, result.labels)
    np.testing.assert_allclose(distances, result.distances, atol=1e-6)  # BLAS blocking changes the last bits
