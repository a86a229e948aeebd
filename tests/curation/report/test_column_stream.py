import numpy as np
import pytest

from curation.report.column_stream import BINS, ColumnStream, key_value, sortable_keys


def stream_of(values: np.ndarray, batches: int, rng, **kwargs) -> ColumnStream:
    """Both passes, the values cut into `batches` pieces at random points."""
    cuts = np.sort(rng.integers(0, values.size + 1, size=batches - 1))
    stream = ColumnStream(values.dtype, **kwargs)
    for _ in range(2):
        for piece in np.split(values, cuts):
            stream.add(piece)
        if not stream.pass_two:
            stream.next_pass()
    return stream


def reference(values: np.ndarray, threshold: float, rejects: str) -> dict:
    wide = values.astype(np.float64)
    lo, hi = min(wide.min(), threshold), max(wide.max(), threshold)
    counts, edges = np.histogram(wide, bins=BINS, range=(lo, hi) if hi > lo else None)
    beyond = wide < threshold if rejects == "below" else wide > threshold
    return {
        "percentiles": np.percentile(wide, [5, 50, 95]).tolist(),
        "mean": wide.mean(),
        "counts": counts,
        "edges": edges,
        "beyond": int(beyond.sum()),
        "zeros": int((wide == 0).sum()),
    }


def columns(rng) -> dict[str, np.ndarray]:
    return {
        "float_spread": rng.normal(3, 4, 5001).astype(np.float32),
        "float_ties": rng.choice(np.float32([-2.5, 0.0, 0.0, 1.25, 7.0]), 999),
        "float_tiny": np.float32([0.7]),
        "float_pair": np.float32([-1.0, 2.0]),
        "float_one_value": np.full(40, 0.25, np.float32),
        "int_sizes": rng.integers(-50, 4000, 3000).astype(np.int32),
        "int_one_value": np.full(7, 384, np.int32),
    }


@pytest.mark.parametrize("name", list(columns(np.random.default_rng(0))))
@pytest.mark.parametrize("batches", [1, 7])
def test_two_passes_equal_numpy_on_the_whole_column(name, batches):
    rng = np.random.default_rng(1)
    values = columns(np.random.default_rng(0))[name]
    for threshold, rejects in ((0.7, "above"), (384.0, "below"), (0.25, "below")):
        stream = stream_of(values, batches, rng, threshold=threshold, rejects=rejects)
        ref = reference(values, threshold, rejects)
        summary = stream.summary()
        assert [summary["p05"], summary["p50"], summary["p95"]] == ref["percentiles"]  # exact, not approximate
        assert summary["count"] == values.size
        assert summary["mean"] == pytest.approx(ref["mean"], rel=1e-12, abs=1e-12)
        assert (stream.beyond, stream.zeros) == (ref["beyond"], ref["zeros"])
        np.testing.assert_array_equal(stream.counts, ref["counts"])
        np.testing.assert_array_equal(stream.edges, ref["edges"])


def test_sortable_keys_keep_the_order_and_map_back():
    rng = np.random.default_rng(2)
    floats = np.concatenate([rng.normal(0, 1e3, 500), [0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf]]).astype(np.float32)
    ints = np.concatenate([rng.integers(-(2**31), 2**31 - 1, 500), [-(2**31), 2**31 - 1, 0, -1]]).astype(np.int32)
    for values in (floats, ints):
        keys = sortable_keys(values)
        order = np.argsort(keys, kind="stable")
        assert np.all(np.diff(values[order].astype(np.float64)) >= 0)
        assert [key_value(int(k), values.dtype) for k in keys] == values.astype(np.float64).tolist()


def test_an_empty_column_has_only_a_count():
    stream = ColumnStream(np.float32, threshold=1.0)
    stream.add(np.zeros(0, np.float32))
    stream.next_pass()
    assert stream.summary() == {"count": 0, "mean": None, "p05": None, "p50": None, "p95": None}
    assert stream.counts.sum() == 0


def test_other_dtypes_are_refused():
    with pytest.raises(TypeError, match="float32 and int32"):
        ColumnStream(np.float64).add(np.ones(3))
