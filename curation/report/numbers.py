"""The report's number rules: ints stay ints, floats are rounded to 4 decimals; and a lookup by dotted path."""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

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
