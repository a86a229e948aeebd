import numpy as np
import pyarrow as pa
import pytest

from curation.report.row_sample import SmallestPerGroup, priorities


def keys(n: int, rng) -> list[str]:
    """Keys of mixed lengths, the empty one included."""
    return ["", *(f"k{i:0{int(rng.integers(1, 12))}d}" for i in range(n - 1))]


def test_priorities_depend_on_key_and_seed_only():
    rng = np.random.default_rng(0)
    names = keys(2000, rng)
    whole = priorities(pa.array(names), seed=3)
    assert len(set(whole.tolist())) == len(names)  # no collisions among distinct keys
    sliced = pa.array(names).slice(500, 700)  # an array view with an offset into its buffers
    np.testing.assert_array_equal(priorities(sliced, seed=3), whole[500:1200])
    chunked = pa.chunked_array([pa.array(names[:10]), pa.array(names[10:])], pa.string())
    np.testing.assert_array_equal(priorities(chunked, seed=3), whole)
    np.testing.assert_array_equal(priorities(pa.array(names, pa.large_string()), seed=3), whole)
    other = priorities(pa.array(names), seed=4)
    assert (other != whole).mean() > 0.99
    # Roughly uniform: the smallest 10 % by priority is not the first or last 10 % of the keys.
    first = set(np.argsort(whole)[:200].tolist())
    assert 5 < len(first & set(range(200))) < 40


@pytest.mark.parametrize("k", [0, 1, 3])
def test_smallest_per_group_equals_sorting_everything(k):
    rng = np.random.default_rng(1)
    n = 3000
    table = pa.table(
        {
            "group": pa.array(rng.choice([7, 2, 11, 40], n, p=[0.7, 0.25, 0.045, 0.005])),
            "key": pa.array(keys(n, rng)),
            "payload": pa.array(np.arange(n)),
        }
    )
    table = table.append_column("priority", pa.array(priorities(table["key"], seed=5)))
    sample = SmallestPerGroup(k)
    for start in range(0, n, 256):
        sample.add(table.slice(start, 256))
    expected = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["group"], r["priority"], r["key"])):
        chosen = expected.setdefault(row["group"], [])
        if len(chosen) < k:
            chosen.append(row["payload"])
    expected = {g: sorted(p, key=lambda i: table["key"][i].as_py()) for g, p in expected.items() if p}
    got = {g: rows["payload"].to_pylist() for g, rows in sample.groups().items()}
    assert got == expected
