import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.score.funnel import READ_STAGE, add_counts, check_invariant, funnel_counts, reason_owner
from curation.score.sink import FRAGMENTS, CandidateSink, marker_path, part_path, write_fragments
from curation.stages.base import REJECT_REASON, STAGE_SECONDS, STAGE_SECONDS_TYPE, WOULD_REJECT

STAGES = [("decode", ["too_small", "truncated"]), ("detect", ["no_person"])]
OWNER = reason_owner(STAGES, ["unreadable_member"])
SCHEMA = pa.schema(
    [("key", pa.string()), ("width", pa.int32()), (WOULD_REJECT, pa.list_(pa.string())), (REJECT_REASON, pa.string())]
)


def rows(shard_id, shard_rows, keys, reasons, would=None):
    n = len(keys)
    return pa.table(
        {
            "key": keys,
            "width": pa.array(list(range(n)), pa.int64()),  # cast to the schema's int32 on write
            WOULD_REJECT: pa.array(would or [None] * n, pa.list_(pa.string())),
            REJECT_REASON: pa.array(reasons, pa.string()),
            "shard_id": pa.array([shard_id] * n, pa.int32()),
            "shard_rows": pa.array([shard_rows] * n, pa.int32()),
            STAGE_SECONDS: pa.array([[("decode", 0.5), ("detect", 0.25)]] * n, STAGE_SECONDS_TYPE),
            "node:detect": pa.array([f"worker-{'abc'[shard_id % 3]}"] * n),
        }
    )


def test_funnel_counts_and_invariant():
    table = rows(
        0, 6, list("abcdef"), [None, "too_small", "no_person", None, "stage_error:detect", "unreadable_member"]
    )
    table = table.set_column(
        2, WOULD_REJECT, pa.array([["no_person"], None, None, None, None, None], pa.list_(pa.string()))
    )
    counts = funnel_counts(table, ["decode", "detect"], OWNER)
    assert counts == {
        READ_STAGE: {"in": 6, "kept": 5, "rejected": {"unreadable_member": 1}, "would_reject": {}},
        "decode": {"in": 5, "kept": 4, "rejected": {"too_small": 1}, "would_reject": {}},
        "detect": {
            "in": 4,
            "kept": 2,
            "rejected": {"no_person": 1, "stage_error:detect": 1},
            "would_reject": {"no_person": 1},
        },
    }
    check_invariant(counts)
    doubled = add_counts(counts, counts)
    assert doubled["detect"]["rejected"] == {"no_person": 2, "stage_error:detect": 2}
    check_invariant(doubled)
    with pytest.raises(AssertionError, match="funnel broken"):
        check_invariant({"decode": {"in": 3, "kept": 1, "rejected": {"x": 1}}})
    with pytest.raises(ValueError, match="belongs to no stage"):
        funnel_counts(rows(0, 1, ["a"], ["mystery"]), ["decode"], OWNER)
    with pytest.raises(ValueError, match="both"):
        reason_owner([("a", ["x"]), ("b", ["x"])], [])


def stream(sink: CandidateSink, batch: pa.Table) -> list[int]:
    """A batch as the pipeline's last map writes it on a worker, then counted by the driver's sink."""
    return sink.add(write_fragments(batch, out_dir=str(sink.out_dir), schema=sink.schema))


@pytest.mark.usefixtures("ray_local")
def test_sink_writes_each_shard_when_complete_sorted_and_marked(tmp_path):
    sink = CandidateSink(
        tmp_path,
        schema=SCHEMA,
        shard_sources={0: "a.tar", 1: "b.tar", 2: "c.tar"},
        stage_names=["decode", "detect"],
        owner=OWNER,
    )
    # Rows of two shards interleave across batches, as they do in a stream.
    assert stream(sink, rows(1, 3, ["z", "y"], [None, "no_person"])) == []
    both = pa.concat_tables([rows(0, 2, ["q", "p"], [None, None]), rows(1, 3, ["x"], ["too_small"])])
    assert stream(sink, both) == [0, 1]
    assert stream(sink, rows(2, 4, ["m"], [None])) == []
    assert stream(sink, rows(2, 4, ["m"], [None])) == []  # a retried task's fragment: same rows, same file
    assert sink.pending == {2: 1}
    sink.finish()
    assert sorted(sink.completed) == [0, 1]
    assert not part_path(tmp_path, 2).exists() and not marker_path(tmp_path, 2).exists()
    assert sorted(p.name for p in (tmp_path / FRAGMENTS).iterdir()) == ["00002"]  # the fragments of 0 and 1 are gone

    part1 = pq.read_table(part_path(tmp_path, 1))
    assert part1.schema.equals(SCHEMA)
    assert part1["key"].to_pylist() == ["x", "y", "z"]
    assert part1[REJECT_REASON].to_pylist() == ["too_small", "no_person", None]
    marker = json.loads(marker_path(tmp_path, 1).read_text())
    assert marker["source"] == "b.tar" and marker["rows"] == 3
    assert marker["funnel"]["detect"] == {"in": 2, "kept": 1, "rejected": {"no_person": 1}, "would_reject": {}}
    assert marker["stage_seconds"] == {"decode": 1.5, "detect": 0.75}
    assert marker["nodes"]["detect"] == ["worker-b"] and len(marker["nodes"]["candidates"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []

    with pytest.raises(RuntimeError, match="received 2 rows, expected 1"):
        stream(sink, rows(3, 1, ["a", "b"], [None, None]))
