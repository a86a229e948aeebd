"""Cluster-balanced sampling down a k-means hierarchy (Vo et al. 2024, arXiv 2405.15613, Sec. 3.3, hierarchical
sampling): the budget is water-filled over the top-level clusters, each cluster's share is water-filled over its child
clusters, down to the leaves, where points are picked at random ('r') or nearest to the leaf centroid first ('c').

Water-filling: every cluster gets min(size, cap), with the largest integer cap that fits the budget; the units left
over go one each to clusters still above the cap. Small clusters are kept whole, big ones are cut to the same size.
"""

from dataclasses import dataclass

import numpy as np

from common.config import bounded, check_ranges

STRATEGIES = ("r", "c")


@dataclass(frozen=True)
class SamplingConfig:
    target_size: int | None = bounded(None, ge=0)  # rows to keep; None: fraction of the rows that reach this step
    fraction: float = bounded(1.0, gt=0, le=1)  # used when target_size is None; 1.0 keeps everything (e.g. 0.25)
    strategy: str = "r"  # leaf picks: 'r' random, 'c' closest to the centroid (the paper's 'r' and 'c' strategies)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES} ('r' random, 'c' nearest), got {self.strategy!r}")

    def target(self, n: int) -> int:
        return min(n, self.target_size if self.target_size is not None else round(self.fraction * n))


def water_fill(sizes: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Allocation per cluster summing to exactly min(budget, sizes.sum()): min(size, cap) for the largest integer cap
    that fits, plus one unit each to `leftover` clusters above the cap, drawn by `rng`."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = min(max(int(budget), 0), int(sizes.sum()))
    if total == int(sizes.sum()):
        return sizes.copy()
    low, high = 0, int(sizes.max())  # sum(min(sizes, low)) <= total < sum(min(sizes, high))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if np.minimum(sizes, middle).sum() <= total else (low, middle)
    allocation = np.minimum(sizes, low)
    leftover = total - int(allocation.sum())  # < number of clusters above the cap, since cap + 1 overshoots
    above = np.flatnonzero(sizes > low)
    allocation[rng.choice(above, leftover, replace=False)] += 1
    return allocation


def _children_by_parent(child: np.ndarray, parent: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Parent of every child cluster id (-1: no points), checking that all points of a child share one parent."""
    parent_of = np.full(int(child.max()) + 1, -1, dtype=np.int64)
    parent_of[child] = parent
    if not np.array_equal(parent_of[child], parent):
        raise ValueError(f"level_ids are not a tree: points of one level-{level} cluster have different parents")
    return parent_of, np.bincount(child, minlength=len(parent_of))


def balanced_sample(
    level_ids: np.ndarray, target: int, *, strategy: str, leaf_distance: np.ndarray | None = None, seed: int
) -> np.ndarray:
    """Boolean mask [n] of min(target, n) rows, balanced down the levels of `level_ids` [n, L] (leaf first).
    `leaf_distance` [n] is required for strategy 'c'."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    level_ids = np.asarray(level_ids, dtype=np.int64)
    n, levels = level_ids.shape
    mask = np.zeros(n, dtype=bool)
    if n == 0 or target <= 0:
        return mask
    rng = np.random.default_rng(seed)
    top = level_ids[:, -1]
    allocation = water_fill(np.bincount(top), target, rng)  # per top-level cluster id
    for level in range(levels - 2, -1, -1):  # split every cluster's allocation over its children
        parent_of, sizes = _children_by_parent(level_ids[:, level], level_ids[:, level + 1], level)
        child_allocation = np.zeros(len(sizes), dtype=np.int64)
        order = np.argsort(parent_of, kind="stable")
        bounds = np.searchsorted(parent_of[order], np.arange(len(allocation) + 1))
        for p in np.flatnonzero(allocation):
            children = order[bounds[p] : bounds[p + 1]]
            child_allocation[children] = water_fill(sizes[children], int(allocation[p]), rng)
        allocation = child_allocation
    leaf = level_ids[:, 0]
    if strategy == "c":
        if leaf_distance is None or len(leaf_distance) != n:
            raise ValueError("strategy 'c' needs leaf_distance: one distance to the leaf centroid per row")
        within = np.asarray(leaf_distance)  # nearest first; ties by row index (lexsort is stable)
    else:
        within = rng.random(n)  # a random order inside each leaf
    order = np.lexsort((within, leaf))
    sorted_leaf = leaf[order]
    rank = np.arange(n) - np.searchsorted(sorted_leaf, sorted_leaf, side="left")
    mask[order[rank < allocation[sorted_leaf]]] = True
    return mask


def distribution_stats(sizes: np.ndarray) -> dict[str, float]:
    """Summary of cluster sizes: count, total, min / median / max, Shannon entropy normalised by log(count)
    (1 = perfectly even) and Gini coefficient (0 = perfectly even)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    count, total = len(sizes), float(sizes.sum())
    if count == 0 or total == 0:
        return {"count": count, "total": total, "min": 0.0, "median": 0.0, "max": 0.0, "entropy": 0.0, "gini": 0.0}
    p = sizes[sizes > 0] / total
    entropy = float(-(p * np.log(p)).sum() / np.log(count)) if count > 1 else 1.0
    ranked = np.sort(sizes)  # Gini = sum_i (2i - count - 1) x_(i) / (count * total), i = 1..count ascending
    gini = float(((2 * np.arange(1, count + 1) - count - 1) * ranked).sum() / (count * total))
    return {
        "count": count,
        "total": total,
        "min": float(ranked[0]),
        "median": float(np.median(ranked)),
        "max": float(ranked[-1]),
        "entropy": entropy,
        "gini": gini,
    }
