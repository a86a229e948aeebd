"""Balance of hierarchical k-means + balanced sampling, with the HierarchyConfig defaults, on a planted long-tailed
mixture: 50 gaussian components in 64-d whose sizes fall from 8,000 to 40 rows (a power law, 21,770 rows), L2-normalised
float16, 20 % kept with the 'r' strategy. The mixture of `bench/hkmeans_sampling.py --planted`, which prints the same
figures against uniform random sampling and the previous defaults."""

import numpy as np
import pytest

from curation.select.balanced_sampling import balanced_sample, distribution_stats
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans
from tests.bench.scripts import bench_module

# The mixture and the leaf count are the bench's, so the test and the bench table measure the same thing
planted = bench_module("hkmeans_sampling")
COMPONENTS, LARGEST, SMALLEST, D = planted.COMPONENTS, planted.LARGEST, planted.SMALLEST, planted.PLANTED_DIM
planted_sizes, planted_mixture, leaves_held = planted.planted_sizes, planted.planted_mixture, planted.leaves_held
FRACTION = 0.2


def test_the_mixture_is_long_tailed():
    sizes = planted_sizes()
    assert (sizes.sum(), sizes[0], sizes[-1], len(sizes)) == (21_770, LARGEST, SMALLEST, COMPONENTS)
    assert (np.diff(sizes) <= 0).all()
    x, component = planted_mixture(0)
    assert x.shape == (21_770, D) and x.dtype == np.float16
    np.testing.assert_array_equal(np.bincount(component), sizes)
    # uniform random sampling keeps the imbalance: that is what the balancing below has to beat
    kept = np.bincount(np.random.default_rng(0).choice(component, round(FRACTION * len(x)), replace=False))
    assert distribution_stats(kept)["entropy"] < 0.7


# Seeds 0-7 of this mixture: largest component 0.05-0.08 of its share of leaves, entropy 0.971-0.981 (at most 0.986),
# >= 40 rows kept of every component (the smallest has 40, under the ~114 a perfect balance gives each). The previous
# defaults (leaf_size 1000, branching 10, 3 steps, share 0.25, AFK-MC² seeding): 22 leaves, entropy 0.88-0.94, a
# component down to 1-22 rows; the defaults with AFK-MC² seeding: share 0.33-0.46, a component down to 24 rows.
@pytest.mark.parametrize("seed", [0, 1])
def test_defaults_balance_a_planted_long_tailed_mixture(seed):
    x, component = planted_mixture(seed)
    hierarchy = hierarchical_kmeans(x, HierarchyConfig(), seed=seed, progress=False)
    assert hierarchy.clusters == [1089, 218, 44]  # ceil(21770 / 20), then / 5 per level
    target = round(FRACTION * len(x))
    mask = balanced_sample(hierarchy.level_ids, target, strategy="r", seed=seed)
    assert mask.sum() == target
    kept = np.bincount(component[mask], minlength=COMPONENTS)

    # the largest component does not take leaves in proportion to its rows: resampling moves them to the tail
    share = hierarchy.clusters[0] * LARGEST / len(x)  # 400 leaves
    held = leaves_held(hierarchy.level_ids[:, 0], component)[0]
    assert held <= 0.6 * share, (held, share)
    assert distribution_stats(kept)["entropy"] >= 0.97, kept
    assert kept.min() >= SMALLEST // 2, kept  # every component represented, none down to a handful
