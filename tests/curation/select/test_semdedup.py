import math

import numpy as np
import pytest

from curation.select import semdedup as semdedup_module
from curation.select.components import component_labels, keep_best
from curation.select.kmeans import assign
from curation.select.semdedup import SemDedupConfig, cluster_pairs, nearest_clusters, semdedup

D = 64


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def at_cosine(base: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly `cosine` from the unit vector `base`."""
    noise = rng.standard_normal(base.shape)
    orthogonal = unit(noise - (noise @ base) * base)
    return cosine * base + np.sqrt(1 - cosine**2) * orthogonal


def planted(
    seed: int, *, uniques: int = 1700, groups: int = 100, decoys: int = 100, min_copy_cosine: float = 0.985
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows around 20 topic centres (cosine ~0.6 inside a topic, ~0 across: the structure k-means finds); `groups`
    of them get 1-4 near copies (cosine to the original >= min_copy_cosine, about its square between two copies:
    >= 0.97 by default); `decoys` sit at cosine 0.9 from an original and must stay. Returns float16 embeddings, the
    planted group of every row (a row without copies is a group of its own) and a random preference rank."""
    rng = np.random.default_rng(seed)
    topics = unit(rng.standard_normal((20, D)))
    rows = list(unit(topics[rng.integers(0, 20, uniques)] + 0.1 * rng.standard_normal((uniques, D))))
    group_of = list(range(uniques))
    for g in range(groups):
        for _ in range(rng.integers(1, 5)):
            rows.append(at_cosine(rows[g], rng.uniform(min_copy_cosine, 0.999), rng))
            group_of.append(g)
    for i in range(decoys):
        rows.append(at_cosine(rows[groups + i], 0.9, rng))
        group_of.append(len(group_of))
    return np.asarray(rows).astype(np.float16), np.asarray(group_of), rng.permutation(len(rows))


def between_topics(seed: int, *, uniques: int = 1000, groups: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Rows around 20 topic centres, plus `groups` copy groups of 2-5 rows (cosine >= 0.985 to their centre) each
    centred on the midpoint of its own pair of topics: on the border of two k-means clusters. Returns float16
    embeddings and a random preference rank."""
    rng = np.random.default_rng(seed)
    topics = unit(rng.standard_normal((20, D)))
    rows = list(unit(topics[rng.integers(0, 20, uniques)] + 0.1 * rng.standard_normal((uniques, D))))
    topic_pairs = np.argwhere(np.triu(np.ones((20, 20), bool), k=1))
    for a, b in topic_pairs[rng.choice(len(topic_pairs), groups, replace=False)]:
        centre = unit(topics[a] + topics[b])
        rows.extend(at_cosine(centre, rng.uniform(0.985, 0.999), rng) for _ in range(rng.integers(2, 6)))
    return np.asarray(rows).astype(np.float16), rng.permutation(len(rows))


def brute_force_pairs(embeddings: np.ndarray, min_cosine: float) -> set[tuple[int, int]]:
    x = embeddings.astype(np.float32)
    left, right = np.nonzero(np.triu(x @ x.T >= min_cosine, k=1))
    return set(zip(left.tolist(), right.tolist(), strict=True))


def brute_force_dup_of(embeddings: np.ndarray, rank: np.ndarray, min_cosine: float) -> np.ndarray:
    x = embeddings.astype(np.float32)
    left, right = np.nonzero(np.triu(x @ x.T >= min_cosine, k=1))
    kept = keep_best(component_labels(len(x), left, right), rank)
    return np.where(kept == np.arange(len(x)), -1, kept)


def expected_dup_of(group_of: np.ndarray, rank: np.ndarray) -> np.ndarray:
    kept = keep_best(group_of, rank)
    return np.where(kept == np.arange(len(group_of)), -1, kept)


@pytest.mark.parametrize("num_clusters", [None, 20])
def test_exactly_the_planted_copies_go_and_the_best_ranked_stays(num_clusters):
    embeddings, group_of, rank = planted(0)
    result = semdedup(embeddings, rank, SemDedupConfig(num_clusters=num_clusters), seed=0, progress=False)
    expected = expected_dup_of(group_of, rank)
    np.testing.assert_array_equal(result.dup_of, expected)
    np.testing.assert_array_equal(result.dup_of, brute_force_dup_of(embeddings, rank, 0.95))
    assert result.removed == int((expected >= 0).sum()) > 100
    assert result.clusters == (num_clusters or math.ceil(len(embeddings) / 1000))
    group_sizes = np.bincount(group_of)
    assert result.pairs == int((group_sizes * (group_sizes - 1) // 2).sum())  # every pair inside a group
    decoys = np.arange(len(group_of) - 100, len(group_of))
    assert (result.dup_of[decoys] == -1).all()


def test_matches_brute_force_with_copies_near_the_threshold():
    # copies down to cosine 0.955 from their original: two copies of one original may fall under 0.95 to each other
    # and only join through it; the brute-force components decide
    embeddings, _, rank = planted(1, min_copy_cosine=0.955)
    result = semdedup(embeddings, rank, SemDedupConfig(), seed=1, progress=False)
    np.testing.assert_array_equal(result.dup_of, brute_force_dup_of(embeddings, rank, 0.95))


def test_groups_on_a_cluster_border_are_found_with_two_clusters_per_row(monkeypatch):
    embeddings, rank = between_topics(4)
    brute = brute_force_pairs(embeddings, 0.95)
    found = {}
    original = semdedup_module.component_labels

    def record(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:  # the pairs semdedup joins
        found[m] = list(zip(left.tolist(), right.tolist(), strict=True))
        return original(n, left, right)

    monkeypatch.setattr(semdedup_module, "component_labels", record)
    results = {}
    for m in (1, 2):
        config = SemDedupConfig(num_clusters=20, clusters_per_row=m)
        results[m] = semdedup(embeddings, rank, config, seed=4, progress=False)
        assert results[m].pairs == len(found[m]) == len(set(found[m]))  # a pair found in two clusters counts once
        assert set(found[m]) <= brute  # precision 1.0
    recall = {m: len(found[m]) / len(brute) for m in (1, 2)}
    assert recall[2] >= 0.99  # 1.0 here: every copy's two nearest clusters are the two topics it sits between
    assert recall[1] < 0.99  # ~0.95 here: one cluster per row splits groups between topics
    assert set(found[1]) <= set(found[2])  # same centroids: the nearest cluster is one of the two nearest
    assert results[1].removed < results[2].removed
    np.testing.assert_array_equal(results[2].dup_of, brute_force_dup_of(embeddings, rank, 0.95))


def test_nearest_clusters_are_ordered_by_inner_product(monkeypatch):
    rng = np.random.default_rng(5)
    x = unit(rng.standard_normal((300, D))).astype(np.float16)
    centroids = unit(rng.standard_normal((12, D))).astype(np.float32)
    monkeypatch.setattr(semdedup_module, "ASSIGN_CHUNK", 7)  # float16 rows converted 7 at a time
    nearest = nearest_clusters(x, centroids, 3)
    assert nearest.shape == (300, 3) and nearest.dtype == np.int64
    np.testing.assert_array_equal(nearest, np.argsort(-(x.astype(np.float32) @ centroids.T), axis=1)[:, :3])
    np.testing.assert_array_equal(nearest[:, 0], assign(x, centroids)[0])
    with pytest.raises(ValueError, match="number of centroids"):
        nearest_clusters(x, centroids, 13)


def test_blocked_pairs_equal_the_full_matrix(monkeypatch):
    embeddings, _, _ = planted(2, uniques=300, groups=40, decoys=20)
    x = embeddings.astype(np.float32)
    full = np.argwhere(np.triu(x @ x.T >= 0.95, k=1))
    monkeypatch.setattr(semdedup_module, "BLOCK_ELEMENTS", 7 * len(x))  # blocks of 7 rows
    left, right = cluster_pairs(x, 0.95)
    found = np.stack([left, right], axis=1)
    np.testing.assert_array_equal(found[np.lexsort((right, left))], full)


def test_same_seed_same_result_and_edge_cases():
    embeddings, _, rank = planted(3, uniques=500, groups=30, decoys=10)
    first = semdedup(embeddings, rank, SemDedupConfig(num_clusters=8), seed=5, progress=False)
    again = semdedup(embeddings, rank, SemDedupConfig(num_clusters=8), seed=5, progress=False)
    np.testing.assert_array_equal(first.dup_of, again.dup_of)
    assert first.dup_of.dtype == np.int64
    empty = semdedup(np.zeros((0, D), np.float16), np.zeros(0, np.int64), SemDedupConfig(), seed=0, progress=False)
    assert len(empty.dup_of) == 0 and empty.removed == empty.pairs == 0
    one = semdedup(embeddings[:1], rank[:1], SemDedupConfig(num_clusters=50), seed=0, progress=False)
    assert one.dup_of.tolist() == [-1] and one.clusters == 1  # k clamped to the number of rows
    with pytest.raises(ValueError, match="rank"):
        semdedup(embeddings, rank[:-1], SemDedupConfig(), seed=0, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"num_clusters": 0}, "num_clusters"),
        ({"min_cosine": 1.5}, "min_cosine"),
        ({"clusters_per_row": 0}, "clusters_per_row"),
    ],
)
def test_config_names_the_bad_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        SemDedupConfig(**kwargs)
