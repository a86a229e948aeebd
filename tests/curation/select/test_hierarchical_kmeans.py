import numpy as np
import pytest

from curation.select import kmeans as kmeans_module
from curation.select.hierarchical_kmeans import HierarchyConfig, closest_per_cluster, hierarchical_kmeans
from curation.select.kmeans import assign, kmeans

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resampling_moves_centroids_out_of_the_big_blob(seed):
    # plain k-means gives the big blob (83 % of the rows) 15-20 of the 30 leaves; three resampling-clustering steps
    # leave it 1-8 (seeds 0-9), the rest going to the small blobs
    x, blob = unbalanced_blobs(seed)
    plain = hierarchical_kmeans(
        x, HierarchyConfig(**{**vars(CONFIG), "resampling_steps": 0}), seed=seed, progress=False
    )
    resampled = hierarchical_kmeans(x, CONFIG, seed=seed, progress=False)
    assert CONFIG.resampling_steps == 3
    before = clusters_in_big_blob(plain.level_ids[:, 0], blob)
    after = clusters_in_big_blob(resampled.level_ids[:, 0], blob)
    assert after <= before - 5, (before, after)


def test_clusters_per_level():
    assert HierarchyConfig().clusters_for(1_000_000) == [1000, 100, 10]
    assert HierarchyConfig().clusters_for(2_500) == [3, 1, 1]
    assert HierarchyConfig(levels=2, clusters=[50, 80]).clusters_for(30) == [30, 30]  # clamped to the points
    assert HierarchyConfig(levels=1).clusters_for(1) == [1]
    with pytest.raises(ValueError, match="clusters"):
        HierarchyConfig(levels=3, clusters=[10, 2])
    with pytest.raises(ValueError, match="resample_share"):
        HierarchyConfig(resample_share=0.0)


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
