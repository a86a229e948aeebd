"""Duplicate groups as connected components of a pair graph, and which member of each group is kept.

Both dedup steps end here: near-duplicate pairs -> components (scipy's union-find-equivalent csgraph labelling,
linear in rows + pairs) -> the most preferred row of each component is kept, every other row points at it.
"""

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def component_labels(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component id per row (0..n-1) of the undirected graph with edges left[i]-right[i]."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def preference_rank(table: pa.Table, columns: Sequence[str], *, tiebreak: str = "key") -> np.ndarray:
    """Rank of every row, 0 = most preferred: larger values of `columns` first (in order), nulls last, then the
    smallest `tiebreak` value, so the choice never depends on row order."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    sort_keys = []
    for name in columns:
        values = pc.fill_null(table[name].cast(pa.float64()), -np.inf).to_numpy(zero_copy_only=False)
        sort_keys.append((-values).astype(np.float64))
    tie = pc.rank(table[tiebreak], sort_keys="ascending", tiebreaker="first").to_numpy() if tiebreak else None
    keys = ([tie] if tie is not None else []) + sort_keys[::-1]  # np.lexsort: last key is the primary one
    order = np.lexsort(keys) if keys else np.arange(table.num_rows)
    rank = np.empty(table.num_rows, dtype=np.int64)
    rank[order] = np.arange(table.num_rows)
    return rank


def keep_best(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each row, the index of the row kept in its component: itself when it is the kept one."""
    labels, rank = np.asarray(labels), np.asarray(rank)
    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((rank, labels))  # by component, best rank first inside it
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order[1:]] != labels[order[:-1]]
    best_of_component = np.empty(labels.max() + 1, dtype=np.int64)
    best_of_component[labels[order[first]]] = order[first]
    return best_of_component[labels]
