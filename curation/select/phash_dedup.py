"""Perceptual-hash dedup, the first select step: exact phash matches, then near matches among the distinct values,
then connected components over rows, of which the most preferred row is kept.

Exact matches are grouped first (np.unique) so the pair search sees each value once: a value shared by s rows costs
one hash instead of s, and no s^2 pairs of identical rows ever exist.
"""

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from common.config import bounded, check_ranges
from curation.select.components import component_labels, keep_best, preference_rank
from curation.select.phash_index import MAX_DISTANCE, near_duplicate_pairs


@dataclass
class PhashDedupConfig:
    max_distance: int = bounded(4, ge=0, le=MAX_DISTANCE)  # Hamming bits of 64: DESIGN.md "Defaults" (<= 4)
    # Which duplicate is kept: the most aesthetic one, then the one with the largest person; then the smallest key.
    keep_by: list[str] = field(default_factory=lambda: ["aesthetic", "max_person_short_side"])

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class PhashDedupResult:
    dup_of: np.ndarray  # [n] int64: -1 for a kept row, else the index of the row kept in its place
    exact_groups: int  # phash values shared by >= 2 rows
    near_pairs: int  # pairs of distinct phash values within max_distance
    components: int  # duplicate groups of >= 2 rows, exact and near matches together
    removed: int  # rows with dup_of != -1


def phash_dedup(table: pa.Table, config: PhashDedupConfig, *, progress: bool = True) -> PhashDedupResult:
    """Dedup the rows of `table` (columns key, phash and config.keep_by) by phash; a null phash is never a duplicate."""
    n = table.num_rows
    phash = table.column("phash")
    rows = np.flatnonzero(phash.is_valid().to_numpy(zero_copy_only=False))
    values = phash.drop_null().to_numpy().astype(np.uint64, copy=False)
    distinct, first, inverse, counts = np.unique(values, return_index=True, return_inverse=True, return_counts=True)
    representative = rows[first]  # one row per distinct value

    value_left, value_right = near_duplicate_pairs(distinct, config.max_distance, progress=progress)
    # Edges: every row to its value's representative (exact matches), and representative to representative for each
    # near pair; rows sharing a value are then connected through it.
    left = np.concatenate([rows, representative[value_left]])
    right = np.concatenate([representative[inverse.reshape(-1)], representative[value_right]])
    labels = component_labels(n, left, right)

    kept = keep_best(labels, preference_rank(table, config.keep_by))
    dup_of = np.where(kept == np.arange(n), -1, kept).astype(np.int64)
    sizes = np.bincount(labels, minlength=1)
    return PhashDedupResult(
        dup_of=dup_of,
        exact_groups=int((counts >= 2).sum()),
        near_pairs=len(value_left),
        components=int((sizes >= 2).sum()),
        removed=int((dup_of >= 0).sum()),
    )
