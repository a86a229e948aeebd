"""Resume trusts a completion marker only while the files it names keep their recorded sizes."""

import json
import logging

from common.completion_marker import load_marker, trust_marker
from common.file_digest import record_file

LOGGER = "common.completion_marker"


def shard(tmp_path):
    """A marker vouching for two files, as the shard writers leave it."""
    (tmp_path / "00000.tar").write_bytes(b"t" * 2048)
    (tmp_path / "00000.parquet").write_bytes(b"p" * 300)
    files = {name: record_file(tmp_path / name) for name in ("00000.tar", "00000.parquet")}
    marker = {"count": 3, "files": files}
    path = tmp_path / "00000_stats.json"
    path.write_text(json.dumps(marker))
    return path, marker


def test_matching_sizes_are_trusted_without_a_log_line(tmp_path, caplog):
    path, marker = shard(tmp_path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert trust_marker(path, marker, shard="shard 00000")
    assert caplog.records == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.parquet", "00000.tar", "00000_stats.json"]


def test_a_truncated_file_removes_the_marker_and_that_file(tmp_path, caplog):
    path, marker = shard(tmp_path)
    (tmp_path / "00000.tar").write_bytes(b"t" * 1000)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert not trust_marker(path, marker, shard="shard 00000")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"{tmp_path / '00000.tar'}: expected 2048 bytes, found 1000: shard 00000 is redone")
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.parquet"]


def test_a_missing_file_is_named(tmp_path, caplog):
    path, marker = shard(tmp_path)
    (tmp_path / "00000.parquet").unlink()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert not trust_marker(path, marker, shard="shard 00000")
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / '00000.parquet'}: expected 300 bytes, no such file: shard 00000 is redone"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.tar"]


def test_a_marker_without_file_records_is_unverified(tmp_path, caplog):
    path, marker = shard(tmp_path)
    del marker["files"]
    path.write_text(json.dumps(marker))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert not trust_marker(path, load_marker(path), shard="shard 00000")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"{path} records no file sizes or digests (written by an older version): shard 00000 is unverified and "
            "is redone",
        )
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.parquet", "00000.tar"]  # nothing known damaged


def test_an_unreadable_marker_counts_as_missing(tmp_path, caplog):
    path, _ = shard(tmp_path)
    path.write_bytes(path.read_bytes()[:20])  # cut off
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert load_marker(path) is None
    (record,) = caplog.records
    assert record.levelname == "WARNING" and record.getMessage().startswith(f"{path} is not JSON (")
    assert record.getMessage().endswith("): removed, its shard is redone")
    assert not path.exists()
    assert load_marker(tmp_path / "nothing.json") is None
