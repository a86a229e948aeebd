"""Seeded examples without holding the rows: every row gets a priority from a keyed hash of (seed, key), and each
group keeps the k rows of smallest priority seen so far. The choice depends on the seed and the keys alone, not on
how the rows are split into files or batches, and memory is k rows per group."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MAX = np.iinfo(np.uint64).max


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic is the point)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def priorities(keys: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """uint64 per key: a seeded hash of its bytes, sum of (byte + 1) x a random word per position, then mixed."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    keys = pc.cast(keys, pa.large_binary())
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset : keys.offset + len(keys) + 1]
    data = keys.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]].astype(np.uint64) + np.uint64(1)
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    salt = _mix(np.array([seed], dtype=np.uint64))
    words = _mix(np.arange(int(lengths.max(initial=0)), dtype=np.uint64) + salt)
    with np.errstate(over="ignore"):
        position = np.arange(data.size) - np.repeat(starts, lengths)
        sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(data * words[position], dtype=np.uint64)])
        hashed = sums[starts + lengths] - sums[starts]
    return _mix(hashed ^ _mix(lengths.astype(np.uint64) ^ salt))


class SmallestPerGroup:
    """The k rows of smallest (priority, key) per group value over every table given to `add`. Tables have a
    `group` (integer or string), a `priority` (uint64) and a `key` column, plus whatever the caller wants back."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.kept: pa.Table | None = None
        self._limits: tuple[np.ndarray, np.ndarray] | None = None  # sorted full groups, their k-th priority

    def add(self, table: pa.Table) -> None:
        if self.k == 0 or table.num_rows == 0:
            return
        table = table.filter(self._may_enter(table))  # after warm-up almost every row is dropped here, unsorted
        if table.num_rows == 0:
            return
        if self.kept is not None:
            table = pa.concat_tables([self.kept, table.select(self.kept.column_names)])
        order = pc.sort_indices(table, [("group", "ascending"), ("priority", "ascending"), ("key", "ascending")])
        table = table.take(order)
        groups = table["group"].to_numpy()
        first = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
        rank = np.arange(len(groups)) - np.repeat(first, np.diff(np.append(first, len(groups))))
        self.kept = table.filter(pa.array(rank < self.k))
        self._limits = self._group_limits()

    def _group_limits(self) -> tuple[np.ndarray, np.ndarray]:
        groups, priority = self.kept["group"].to_numpy(), self.kept["priority"].to_numpy()
        last = np.flatnonzero(np.append(groups[1:] != groups[:-1], True))
        sizes = np.diff(np.concatenate([[-1], last]))
        full = sizes >= self.k
        return groups[last][full], priority[last][full]

    def _may_enter(self, table: pa.Table) -> pa.Array:
        """Rows that could displace a kept one: any row of a group not yet full, else priority <= the k-th kept."""
        if self._limits is None or self._limits[0].size == 0:
            return pa.array(np.ones(table.num_rows, dtype=bool))
        full, limit = self._limits
        groups, priority = table["group"].to_numpy(), table["priority"].to_numpy()
        at = np.clip(np.searchsorted(full, groups), 0, full.size - 1)
        bound = np.where(full[at] == groups, limit[at], _MAX)
        return pa.array(priority <= bound)

    def groups(self) -> dict:
        """{group value: its kept rows as a table, in key order}."""
        if self.kept is None:
            return {}
        out = {}
        for value in pc.unique(self.kept["group"]).to_pylist():
            rows = self.kept.filter(pc.equal(self.kept["group"], value))
            out[value] = rows.take(pc.sort_indices(rows, [("key", "ascending")]))
        return out
