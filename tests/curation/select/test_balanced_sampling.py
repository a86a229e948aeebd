import numpy as np
import pytest

from curation.select.balanced_sampling import SamplingConfig, balanced_sample, distribution_stats, water_fill


def brute_force_cap(sizes: np.ndarray, total: int) -> int:
    """The largest integer cap with sum(min(sizes, cap)) <= total, trying every cap."""
    return max(c for c in range(int(sizes.max()) + 2) if np.minimum(sizes, c).sum() <= total)


def test_water_fill_equals_trying_every_cap():
    rng = np.random.default_rng(0)
    for _ in range(300):
        sizes = rng.integers(0, rng.integers(1, 60), rng.integers(1, 12))  # zeros, ties, one cluster: all occur
        budget = int(rng.integers(0, sizes.sum() + 10))
        allocation = water_fill(sizes, budget, rng)
        total = min(budget, int(sizes.sum()))
        assert allocation.sum() == total
        if total == sizes.sum():
            np.testing.assert_array_equal(allocation, sizes)
            continue
        cap = brute_force_cap(sizes, total)
        extra = allocation - np.minimum(sizes, cap)
        assert set(np.unique(extra)) <= {0, 1}
        assert (sizes[extra == 1] > cap).all()  # leftover units only go to clusters above the cap


def test_water_fill_keeps_small_clusters_whole_and_draws_leftovers_by_rng():
    sizes = np.array([1, 2, 50, 100])
    allocation = water_fill(sizes, 60, np.random.default_rng(0))  # cap 28: 1 + 2 + 28 + 28 = 59, one left over
    assert allocation[:2].tolist() == [1, 2]
    assert sorted(allocation[2:].tolist()) == [28, 29]
    draws = {tuple(water_fill(sizes, 60, np.random.default_rng(s))) for s in range(20)}
    assert draws == {(1, 2, 28, 29), (1, 2, 29, 28)}
    assert (
        water_fill(sizes, 60, np.random.default_rng(7)).tolist()
        == water_fill(sizes, 60, np.random.default_rng(7)).tolist()
    )
    assert water_fill(sizes, 0, np.random.default_rng(0)).tolist() == [0, 0, 0, 0]
    assert water_fill(sizes, 10**6, np.random.default_rng(0)).tolist() == sizes.tolist()


def random_tree(seed: int, leaves: int = 60, mids: int = 12, tops: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """level_ids [n, 3] (leaf, mid, top) with long-tailed leaf sizes, and a distinct distance per row."""
    rng = np.random.default_rng(seed)
    leaf_sizes = np.maximum(1, rng.pareto(1.2, leaves) * 20).astype(np.int64)
    mid_of_leaf = np.concatenate([np.arange(mids), rng.integers(0, mids, leaves - mids)])
    top_of_mid = np.concatenate([np.arange(tops), rng.integers(0, tops, mids - tops)])
    leaf = rng.permutation(np.repeat(np.arange(leaves), leaf_sizes))
    level_ids = np.stack([leaf, mid_of_leaf[leaf], top_of_mid[mid_of_leaf[leaf]]], axis=1).astype(np.int32)
    return level_ids, rng.permutation(len(leaf)).astype(np.float32) / len(leaf)


def assert_water_filled(level_ids: np.ndarray, mask: np.ndarray) -> None:
    """At every level, among the children of one cluster (the top level: among all), clusters cut short hold the
    same count to within one (the cap), and every cluster kept whole is no bigger than cap + 1."""
    for level in range(level_ids.shape[1]):
        child = level_ids[:, level]
        parent = level_ids[:, level + 1] if level + 1 < level_ids.shape[1] else np.zeros(len(child), np.int64)
        for p in np.unique(parent):
            ids = child[parent == p]
            sizes = np.bincount(ids)[np.unique(ids)]
            kept = np.bincount(ids[mask[parent == p]], minlength=ids.max() + 1)[np.unique(ids)]
            cut = kept < sizes
            if not cut.any():
                continue
            cap = kept[cut].min()
            assert kept[cut].max() <= cap + 1, (level, p, kept, sizes)
            assert (sizes[~cut] <= cap + 1).all(), (level, p, kept, sizes)


@pytest.mark.parametrize("strategy", ["r", "c"])
@pytest.mark.parametrize("share", [0.05, 0.3, 0.8])
def test_exact_size_and_no_cluster_above_its_cap(strategy, share):
    level_ids, distance = random_tree(0)
    target = int(share * len(level_ids))
    mask = balanced_sample(level_ids, target, strategy=strategy, leaf_distance=distance, seed=1)
    assert mask.dtype == bool and mask.sum() == target
    assert_water_filled(level_ids, mask)


def test_small_top_clusters_are_kept_whole():
    level_ids, distance = random_tree(1)
    sizes = np.bincount(level_ids[:, 2])
    target = int(sizes.min() * len(sizes) + 5)  # cap just above the smallest top-level cluster
    mask = balanced_sample(level_ids, target, strategy="r", leaf_distance=distance, seed=0)
    smallest = sizes.argmin()
    assert mask[level_ids[:, 2] == smallest].all()


def test_same_seed_same_mask_other_seed_another():
    level_ids, distance = random_tree(2)
    first = balanced_sample(level_ids, 300, strategy="r", leaf_distance=distance, seed=5)
    again = balanced_sample(level_ids, 300, strategy="r", leaf_distance=None, seed=5)
    other = balanced_sample(level_ids, 300, strategy="r", leaf_distance=distance, seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_c_picks_exactly_the_points_nearest_to_the_leaf_centroid():
    level_ids, distance = random_tree(3)
    mask = balanced_sample(level_ids, 400, strategy="c", leaf_distance=distance, seed=0)
    leaf = level_ids[:, 0]
    for c in np.unique(leaf[mask]):
        members = leaf == c
        kept, dropped = distance[members & mask], distance[members & ~mask]
        assert len(dropped) == 0 or kept.max() < dropped.min()
    with pytest.raises(ValueError, match="leaf_distance"):
        balanced_sample(level_ids, 400, strategy="c", leaf_distance=None, seed=0)


def test_fraction_target_larger_than_n_and_single_level():
    level_ids, distance = random_tree(4)
    n = len(level_ids)
    config = SamplingConfig(fraction=0.25)
    assert config.target(n) == round(0.25 * n)
    mask = balanced_sample(level_ids, config.target(n), strategy=config.strategy, leaf_distance=distance, seed=0)
    assert mask.sum() == round(0.25 * n)
    assert SamplingConfig(target_size=10 * n).target(n) == n
    assert balanced_sample(level_ids, 10 * n, strategy="r", seed=0).all()
    assert not balanced_sample(level_ids, 0, strategy="r", seed=0).any()
    leaves_only = level_ids[:, :1]
    mask = balanced_sample(leaves_only, 100, strategy="r", seed=0)
    assert mask.sum() == 100
    assert_water_filled(leaves_only, mask)


def test_inputs_that_are_not_a_tree_or_not_a_strategy_fail():
    level_ids = np.array([[0, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="not a tree"):
        balanced_sample(level_ids, 2, strategy="r", seed=0)
    with pytest.raises(ValueError, match="strategy"):
        balanced_sample(level_ids, 2, strategy="x", seed=0)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"strategy": "f"}, "strategy"), ({"fraction": 1.5}, "fraction"), ({"target_size": -1}, "target_size")],
)
def test_config_names_the_bad_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        SamplingConfig(**kwargs)


def test_distribution_stats():
    even = distribution_stats(np.full(8, 5))
    assert even["count"] == 8 and even["total"] == 40 and even["min"] == even["median"] == even["max"] == 5
    assert even["entropy"] == pytest.approx(1.0) and even["gini"] == pytest.approx(0.0)
    one = distribution_stats(np.array([0, 0, 0, 12]))
    assert one["entropy"] == pytest.approx(0.0) and one["gini"] == pytest.approx(0.75)
    sizes = np.random.default_rng(0).integers(0, 100, 50)
    pairwise = np.abs(sizes[:, None] - sizes[None, :]).sum() / (2 * len(sizes) ** 2 * sizes.mean())
    assert distribution_stats(sizes)["gini"] == pytest.approx(pairwise)
    p = sizes[sizes > 0] / sizes.sum()
    assert distribution_stats(sizes)["entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(50))
    assert distribution_stats(np.array([]))["count"] == 0
