"""Output shards damaged after their `_stats.json`: resume rewrites them byte-identically; a cut-off selection is
treated as missing."""

import json
import logging

import pytest

from common.file_digest import record_file
from common.image_decode import DecodeConfig
from curation.layout import PhaseNotRunError
from curation.write.config import WriteConfig
from curation.write.runner import run_write

LOGGER = "common.completion_marker"


def shard_files(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}


def test_damaged_shards_are_rewritten_byte_identical(run_dir, ray_local, caplog):
    cfg = WriteConfig(shard_size=5)
    first = run_write(run_dir, cfg, DecodeConfig(), config_hash="h")
    shards = run_dir / "shards"
    assert len(first.manifest["shards"]) >= 5
    for entry in first.manifest["shards"]:  # each marker vouches for its tar and its parquet
        stats = json.loads((shards / entry["tar"].replace(".tar", "_stats.json")).read_text())
        tar, index = shards / entry["tar"], shards / entry["index"]
        assert stats["files"] == {tar.name: record_file(tar), index.name: record_file(index)}
        assert stats["tar_bytes"] == tar.stat().st_size
    reference = shard_files(run_dir)
    # Cut off after the marker: a tar, a parquet index; and a marker of an older version, which records no files.
    tar_size, parquet_size = len(reference["00001.tar"]), len(reference["00003.parquet"])
    (shards / "00001.tar").write_bytes(reference["00001.tar"][:1536])
    (shards / "00003.parquet").write_bytes(reference["00003.parquet"][:100])
    old = json.loads(reference["00004_stats.json"])
    del old["files"]
    (shards / "00004_stats.json").write_text(json.dumps(old))

    with caplog.at_level(logging.INFO, logger=LOGGER):
        again = run_write(run_dir, cfg, DecodeConfig(), config_hash="h")
    assert again.shards_done_now == 3
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("WARNING", f"{shards / '00001.tar'}: expected {tar_size} bytes, found 1536: shard 00001 is redone"),
        ("WARNING", f"{shards / '00003.parquet'}: expected {parquet_size} bytes, found 100: shard 00003 is redone"),
        (
            "WARNING",
            f"{shards / '00004_stats.json'} records no file sizes or digests (written by an older version): "
            "shard 00004 is unverified and is redone",
        ),
    ]
    assert shard_files(run_dir) == reference
    assert run_write(run_dir, cfg, DecodeConfig(), config_hash="h").shards_done_now == 0


def test_a_cut_off_selection_counts_as_missing(run_dir, caplog):
    path = run_dir / "selection.parquet"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(PhaseNotRunError) as err, caplog.at_level(logging.WARNING, logger="curation.write.runner"):
        run_write(run_dir, WriteConfig(shard_size=5), DecodeConfig(), config_hash="h")  # fails before any Ray call
    message = str(err.value)
    assert message.startswith(f"{path} cannot be read (")
    assert message.endswith("): run `humans1b curate select` (or `humans1b curate`) again to redo it")
    warnings = [r.getMessage() for r in caplog.records if r.name == "curation.write.runner"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{path} cannot be read (")
    assert not (run_dir / "shards").exists()
