"""The write phase reads tar members by their recorded byte ranges: the same shards, byte for byte, as streaming
the tars, without reading the members it does not need, and a hostile range is a listed failure."""

import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from common.image_decode import DecodeConfig
from curation.write.config import WriteConfig
from curation.write.runner import run_write

RANGE_COLUMNS = ("member_offset", "member_bytes")


def shard_bytes(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}


def without_ranges(selection: pa.Table) -> pa.Table:
    """The selection as a candidate set scored before ranges were recorded: rows are read by streaming."""
    for name in RANGE_COLUMNS:
        i = selection.schema.get_field_index(name)
        selection = selection.set_column(i, name, pa.nulls(selection.num_rows, pa.int64()))
    return selection


def run_dir_with(tmp_path, name: str, selection: pa.Table):
    out = tmp_path / name
    out.mkdir()
    pq.write_table(selection, out / "selection.parquet")
    return out


def damage_first_headers(tars) -> None:
    """Breaks the first header block of each tar: a stream cannot get past it, a ranged read never looks at it."""
    for tar in tars:
        with open(tar, "r+b") as f:
            f.seek(148)  # the header checksum field
            f.write(b"garbage!")


@pytest.fixture
def tars(corpus, tmp_path):
    """A copy of the corpus tars, for tests to damage."""
    return shutil.copytree(corpus.tars_dir, tmp_path / "tars")


@pytest.fixture
def tar_selection(tars, make_selection):
    """Every decodable tar image but the first member of each tar (its header gets damaged below)."""
    selection = make_selection([str(tars)])
    keep = pc.not_equal(selection["member_offset"], 512)
    selection = selection.filter(keep)
    assert selection.num_rows >= 20 and selection["member_offset"].null_count == 0
    return selection


def test_ranged_reads_give_the_shards_streaming_gives(tar_selection, tars, tmp_path, ray_local):
    cfg = WriteConfig(shard_size=7)
    streamed = run_dir_with(tmp_path, "streamed", without_ranges(tar_selection))
    reference = run_write(streamed, cfg, DecodeConfig(), config_hash="h")
    assert reference.manifest["failed"] == [] and reference.manifest["samples"] == tar_selection.num_rows

    damage_first_headers(tars.glob("*.tar"))
    ranged = run_dir_with(tmp_path, "ranged", tar_selection)
    result = run_write(ranged, cfg, DecodeConfig(), config_hash="h")
    assert result.manifest == reference.manifest
    assert shard_bytes(ranged) == shard_bytes(streamed)

    # The damage is real: streaming the same tars now loses every row.
    again = run_write(
        run_dir_with(tmp_path, "streamed_again", without_ranges(tar_selection)), cfg, DecodeConfig(), config_hash="h"
    )
    assert again.manifest["samples"] == 0 and len(again.manifest["failed"]) == tar_selection.num_rows


@pytest.mark.parametrize(
    "offset, size",
    [(-512, 100), (512, -1), (512, 2**62), (10**15, 100), (1024, 100), (None, 100)],
    ids=["negative_offset", "negative_size", "huge_size", "beyond_end", "no_header_there", "half_a_range"],
)
def test_a_hostile_range_is_a_listed_read_error(tar_selection, tmp_path, ray_local, offset, size):
    rows = tar_selection.to_pylist()
    victim = rows[3]
    victim["member_offset"], victim["member_bytes"] = offset, size
    selection = pa.Table.from_pylist(rows, schema=tar_selection.schema)
    result = run_write(
        run_dir_with(tmp_path, "run", selection), WriteConfig(shard_size=100), DecodeConfig(), config_hash="h"
    )
    if offset is None:  # without a whole range the row is streamed, as rows scored before ranges existed
        assert result.manifest["failed"] == [] and result.manifest["samples"] == len(rows)
        return
    assert result.manifest["failed"] == [{"key": victim["key"], "reason": "read_error"}]
    assert result.manifest["samples"] == len(rows) - 1
