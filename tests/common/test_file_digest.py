"""Digests computed while writing equal the digests of the bytes on disk, and cost no change to those bytes."""

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from common.file_digest import HashingWriter, record_file, record_of, write_parquet
from common.shard_writer import TAR_MTIME


def on_disk(path) -> dict:
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_tar_streamed_through_the_hashing_writer(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "a.tar"
    with (
        HashingWriter(open(path, "wb")) as hashing,
        wds.TarWriter(hashing, user="", group="", mode=0o644, encoder=False, mtime=TAR_MTIME) as tar,
    ):
        for i in range(7):  # sizes around tar's 512-byte blocks
            tar.write({"__key__": f"{i:03d}", "jpg": rng.bytes(int(rng.integers(1, 2000)))})
    assert hashing.closed
    assert hashing.record() == on_disk(path) == record_file(path)
    assert hashing.record()["bytes"] % 512 == 0 and hashing.record()["bytes"] > 7 * 512


def test_write_parquet_gives_the_bytes_of_write_table_and_their_record(tmp_path):
    table = pa.table({"key": [f"k{i}" for i in range(1000)], "x": np.arange(1000, dtype=np.float32)})
    record = write_parquet(table, tmp_path / "a.parquet")
    pq.write_table(table, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert record == on_disk(tmp_path / "a.parquet") == record_of((tmp_path / "b.parquet").read_bytes())
    assert pq.read_table(tmp_path / "a.parquet").equals(table)
