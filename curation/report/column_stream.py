"""Count, mean, 5/50/95th percentiles, threshold counts and a fixed-bin histogram of a column too large to hold,
fed batch by batch in two passes over the data; memory does not grow with the rows.

The percentiles are exact, equal to np.percentile of the whole column: each value maps to a 32-bit key in value
order; pass one counts keys per high 16 bits, pass two counts the low 16 bits inside the few high buckets that hold
a rank the percentiles need (radix selection). The histogram's range (min, max and the threshold) is known after
pass one, so pass two bins every value exactly as one np.histogram over the whole column would."""

import math
from typing import Literal

import numpy as np

PERCENTILES = (5, 50, 95)
BINS = 50
_HALF = 1 << 16
_SIGN = np.uint32(1 << 31)


def sortable_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys ordered as the values: float32 by the sign-magnitude flip, int32 by moving the sign bit."""
    if values.dtype == np.float32:
        bits = values.view(np.uint32)
        return np.where(bits & _SIGN, ~bits, bits | _SIGN)
    if values.dtype == np.int32:
        return values.view(np.uint32) ^ _SIGN
    raise TypeError(f"the report summarises float32 and int32 columns, got {values.dtype}")


def key_value(key: int, dtype: np.dtype) -> float:
    """The value a key of `sortable_keys` stands for."""
    k = np.array([key], dtype=np.uint32)
    if dtype == np.float32:
        return float(np.where(k & _SIGN, k ^ _SIGN, ~k).view(np.float32)[0])
    return float((k ^ _SIGN).view(np.int32)[0])


def lerp(a: float, b: float, t: float) -> float:
    """Linear interpolation as np.percentile does it (from the nearer end), so the results match to the bit."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


class ColumnStream:
    """Feed every batch of non-null values to `add` (pass one), call `next_pass`, feed them again (pass two)."""

    def __init__(self, dtype: np.dtype, threshold: float | None = None, rejects: Literal["below", "above"] = "below"):
        self.dtype = np.dtype(dtype)
        self.threshold, self.rejects = threshold, rejects
        self.count, self.total, self.zeros, self.beyond = 0, 0.0, 0, 0
        self.low, self.high = math.inf, -math.inf
        self.high_bits = np.zeros(_HALF, dtype=np.int64)
        self.pass_two = False
        self.ranks: dict[int, tuple[int, int]] = {}  # rank -> (high bucket, rank inside it)
        self.low_bits: dict[int, np.ndarray] = {}  # high bucket -> counts of its low 16 bits
        self.counts = np.zeros(BINS, dtype=np.int64)
        self.edges = np.zeros(0)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self.dtype)
        if values.size == 0:
            return
        keys = sortable_keys(values)
        wide = values.astype(np.float64)
        if self.pass_two:
            self.counts += np.histogram(wide, bins=BINS, range=self.range)[0]
            high = keys >> 16
            for bucket, counts in self.low_bits.items():
                counts += np.bincount(keys[high == bucket] & 0xFFFF, minlength=_HALF)
            return
        self.count += values.size
        self.total += float(wide.sum())
        self.low, self.high = min(self.low, float(wide.min())), max(self.high, float(wide.max()))
        self.high_bits += np.bincount(keys >> 16, minlength=_HALF)
        self.zeros += int(np.count_nonzero(wide == 0))
        if self.threshold is not None:
            beyond = wide < self.threshold if self.rejects == "below" else wide > self.threshold
            self.beyond += int(np.count_nonzero(beyond))

    def next_pass(self) -> None:
        """After pass one: which high buckets hold the ranks the percentiles read, and the histogram's range."""
        self.pass_two = True
        if self.count == 0:
            return
        starts = np.concatenate([[0], np.cumsum(self.high_bits)])
        for rank in {r for p in PERCENTILES for r in self._neighbours(p)}:
            bucket = int(np.searchsorted(starts, rank, side="right")) - 1
            self.ranks[rank] = (bucket, rank - int(starts[bucket]))
            self.low_bits.setdefault(bucket, np.zeros(_HALF, dtype=np.int64))
        self.edges = np.histogram_bin_edges(np.zeros(0), bins=BINS, range=self.range)

    @property
    def range(self) -> tuple[float, float]:
        """min/max of the values and the threshold; one value alone gets +-0.5, as np.histogram gives it."""
        t = self.threshold if self.threshold is not None else self.low
        lo, hi = min(self.low, t), max(self.high, t)
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)

    def _neighbours(self, percentile: float) -> tuple[int, int]:
        virtual = (self.count - 1) * (percentile / 100)
        if virtual >= self.count - 1:
            return self.count - 1, self.count - 1
        below = math.floor(virtual)
        return below, below + 1

    def _value_at(self, rank: int) -> float:
        bucket, inside = self.ranks[rank]
        low = int(np.searchsorted(np.cumsum(self.low_bits[bucket]), inside, side="right"))
        return key_value((bucket << 16) | low, self.dtype)

    def summary(self) -> dict:
        """count, mean, p05, p50, p95 (None but the count when there are no values), as numbers.summarize gives."""
        if self.count == 0:
            return {"count": 0, "mean": None, "p05": None, "p50": None, "p95": None}
        out = {"count": self.count, "mean": self.total / self.count}
        for p in PERCENTILES:
            below, above = self._neighbours(p)
            t = (self.count - 1) * (p / 100) - below
            out[f"p{p:02d}"] = lerp(self._value_at(below), self._value_at(above), t)
        return out
