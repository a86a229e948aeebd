"""The report's number rules: ints stay ints, floats are rounded to 4 decimals, and a summary of a column."""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DECIMALS = 4


def clean(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars become Python numbers, floats are rounded, NaN/inf become None."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return round(float(value), DECIMALS) if math.isfinite(value) else None
    return value


def lookup(stats: Any, path: str) -> Any:
    """The value at a dotted path such as `funnel.3.kept`; list items by index."""
    node = stats
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def non_null(table: pa.Table | None, column: str) -> np.ndarray:
    """The column's non-null values as float64 (empty when there is no table)."""
    if table is None or table.num_rows == 0:
        return np.zeros(0)
    values = pc.drop_null(table[column])
    return values.to_numpy(zero_copy_only=False).astype(np.float64) if len(values) else np.zeros(0)


def summarize(values: np.ndarray) -> dict[str, Any]:
    """count, mean and the 5/50/95th percentiles; None for all but the count when there are no values."""
    if values.size == 0:
        return {"count": 0, "mean": None, "p05": None, "p50": None, "p95": None}
    p05, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"count": int(values.size), "mean": float(values.mean()), "p05": p05, "p50": p50, "p95": p95}
