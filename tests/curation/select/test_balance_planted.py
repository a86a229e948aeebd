"""Balance of hierarchical k-means + balanced sampling, with the HierarchyConfig defaults, on a planted long-tailed
mixture: 50 gaussian components in 64-d whose sizes fall from 8,000 to 40 rows (a power law, 21,770 rows), L2-normalised
float16, 20 % kept with the 'r' strategy. The mixture of `bench/hkmeans_sampling.py --planted`, which prints the same
figures against uniform random sampling and the previous defaults."""

import numpy as np
import pytest

from curation.select.balanced_sampling import balanced_sample, distribution_stats
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans

COMPONENTS, LARGEST, SMALLEST, D = 50, 8000, 40, 64
SPREAD = 0.6  # noise norm around a unit centre: cosine ~0.86 to the own centre, ~0 across components
FRACTION = 0.2


def planted_sizes() -> np.ndarray:
    """Rows per component: LARGEST * i^-a for i = 1..COMPONENTS, a set so the last one has SMALLEST rows."""
    exponent = np.log(LARGEST / SMALLEST) / np.log(COMPONENTS)
    return np.round(LARGEST * np.arange(1, COMPONENTS + 1) ** -exponent).astype(np.int64)


def planted_mixture(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[21770, 64] float16 unit rows and the component of each (component 0 the largest)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((COMPONENTS, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    component = np.repeat(np.arange(COMPONENTS), planted_sizes())
    x = centres[component] + rng.standard_normal((len(component), D)) * SPREAD / np.sqrt(D)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16), component


def leaves_held(leaf: np.ndarray, component: np.ndarray) -> np.ndarray:
    """[COMPONENTS] number of leaf clusters in which each component has the most rows."""
    table = np.zeros((leaf.max() + 1, COMPONENTS), dtype=np.int64)
    np.add.at(table, (leaf, component), 1)
    return np.bincount(table.argmax(1)[table.sum(1) > 0], minlength=COMPONENTS)


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
