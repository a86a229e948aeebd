"""A candidate part's marker records its size and SHA-256; resume's check costs a stat and a footer read."""

import json
import logging

import pytest

from common.file_digest import record_file
from curation.score.sink import CandidateSink, marker_path, part_is_intact, part_path, read_marker
from tests.curation.score.test_sink_funnel import OWNER, SCHEMA, rows, stream

pytestmark = pytest.mark.usefixtures("ray_local")

LOGGER = "curation.score.sink"


def two_shards(tmp_path):
    sink = CandidateSink(
        tmp_path, schema=SCHEMA, shard_sources={0: "a.tar", 1: "b.tar"}, stage_names=["decode", "detect"], owner=OWNER
    )
    stream(sink, rows(0, 3, ["c", "a", "b"], [None, "too_small", None]))
    stream(sink, rows(1, 2, ["y", "x"], [None, None]))
    sink.finish()
    return [read_marker(tmp_path, i) for i in (0, 1)]


def test_the_marker_records_the_parts_size_and_digest(tmp_path, caplog):
    markers = two_shards(tmp_path)
    for shard_id, marker in enumerate(markers):
        part = part_path(tmp_path, shard_id)
        assert marker["files"] == {part.name: record_file(part)}
        assert json.loads(marker_path(tmp_path, shard_id).read_text()) == marker
    with caplog.at_level(logging.INFO):
        assert part_is_intact(tmp_path, 0, markers[0]) and part_is_intact(tmp_path, 1, markers[1])
    assert [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING] == []


def test_a_truncated_part_is_redone(tmp_path, caplog):
    markers = two_shards(tmp_path)
    part = part_path(tmp_path, 1)
    size = part.stat().st_size
    part.write_bytes(part.read_bytes()[: size // 2])
    with caplog.at_level(logging.INFO):
        assert not part_is_intact(tmp_path, 1, markers[1])
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == [
        ("WARNING", f"{part}: expected {size} bytes, found {size // 2}: shard 00001 is redone")
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.done.json", "part-00000.parquet"]


def test_a_damaged_footer_of_the_right_size_is_redone(tmp_path, caplog):
    markers = two_shards(tmp_path)
    part = part_path(tmp_path, 0)
    data = bytearray(part.read_bytes())
    data[-8:-4] = (len(data) * 2).to_bytes(4, "little")  # footer length beyond the file; size unchanged
    part.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert not part_is_intact(tmp_path, 0, markers[0])
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(f"{part}: its parquet footer cannot be read (")
    assert record.getMessage().endswith("): shard 00000 is redone")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00001.done.json", "part-00001.parquet"]
