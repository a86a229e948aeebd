import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile

import numpy as np
import pyarrow as pa
import pytest
import webdataset as wds

from common.safe_tar import UnsafeTarError
from common.schemas import SHARD_BASE_FIELDS, SHARD_INDEX_SCHEMA
from common.shard_reader import iter_shard, read_index, read_sample_at
from common.shard_writer import ShardWriter, shard_is_complete, shard_paths


def make_samples(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        # Sizes straddle tar's 512-byte blocks so offsets are exercised with and without padding.
        data = rng.integers(0, 256, size=int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        meta = {"index": i, "caption": f"person {i}", "score": round(float(rng.random()), 6)}
        samples.append({"key": f"{i:09d}", "jpg": data, "json": meta, "source": f"file:///raw/{i}.jpg"})
    return samples


def write_shard(out_dir, samples, shard_id=0):
    with ShardWriter(out_dir=out_dir, shard_id=shard_id, index_schema=SHARD_INDEX_SCHEMA, image_ext="jpg") as w:
        for s in samples:
            w.write(key=s["key"], files={"jpg": s["jpg"], "json": s["json"]}, index={"source": s["source"], "width": 7})
    return shard_paths(out_dir, shard_id)


def test_round_trip_webdataset_and_pyarrow(tmp_path):
    samples = make_samples(37)
    paths = write_shard(tmp_path, samples, shard_id=3)
    assert [p.name for p in paths.values()] == ["00003.tar", "00003.parquet", "00003_stats.json"]
    assert shard_is_complete(tmp_path, 3)

    read = list(wds.WebDataset(str(paths["tar"]), shardshuffle=False))
    assert [r["__key__"] for r in read] == [s["key"] for s in samples]
    for r, s in zip(read, samples, strict=True):
        assert r["jpg"] == s["jpg"]
        assert json.loads(r["json"]) == s["json"]

    ours = list(iter_shard(paths["tar"]))
    assert [r["__key__"] for r in ours] == [s["key"] for s in samples]
    assert all(r["jpg"] == s["jpg"] for r, s in zip(ours, samples, strict=True))

    index = read_index(paths["parquet"])
    assert index.schema.equals(SHARD_INDEX_SCHEMA)
    assert index["key"].to_pylist() == [s["key"] for s in samples]
    assert index["source"].to_pylist() == [s["source"] for s in samples]
    assert index["width"].to_pylist() == [7] * 37
    assert index["height"].null_count == 37
    assert index["sha256"].to_pylist() == [hashlib.sha256(s["jpg"]).hexdigest() for s in samples]
    # Byte ranges tile the tar and give each sample back on its own.
    offsets, sizes = index["tar_offset"].to_pylist(), index["tar_bytes"].to_pylist()
    assert offsets[0] == 0 and all(o + n == nxt for o, n, nxt in zip(offsets, sizes, offsets[1:], strict=False))
    for row, s in zip(index.to_pylist(), samples, strict=True):
        one = read_sample_at(paths["tar"], tar_offset=row["tar_offset"], tar_bytes=row["tar_bytes"])
        assert one["__key__"] == s["key"] and one["jpg"] == s["jpg"]

    stats = json.loads(paths["stats"].read_text())
    assert stats == {
        "shard": "00003",
        "count": 37,
        "tar_bytes": paths["tar"].stat().st_size,
        "files_per_extension": {"jpg": 37, "json": 37},
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in (paths["tar"], paths["parquet"])
        },
    }


def test_identical_input_gives_byte_identical_shards(tmp_path):
    samples = make_samples(20, seed=1)
    a = write_shard(tmp_path / "a", samples)
    b = write_shard(tmp_path / "b", samples)
    for kind in ("tar", "parquet", "stats"):
        assert a[kind].read_bytes() == b[kind].read_bytes(), kind
    with tarfile.open(a["tar"]) as tar:
        infos = tar.getmembers()
    assert {(i.mtime, i.uname, i.gname, i.mode) for i in infos} == {(946684800, "", "", 0o644)}


def test_exception_inside_writer_leaves_nothing(tmp_path):
    samples = make_samples(5)
    # The failure happens mid-shard, after some samples went into the temporary tar.
    with (
        pytest.raises(RuntimeError, match="boom"),
        ShardWriter(out_dir=tmp_path, shard_id=0, index_schema=SHARD_INDEX_SCHEMA) as w,
    ):
        for s in samples:
            w.write(key=s["key"], files={"jpg": s["jpg"]})
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


_KILLED_WRITER = """
import os, signal, sys
from common.schemas import SHARD_INDEX_SCHEMA
from common.shard_writer import ShardWriter
with ShardWriter(out_dir=sys.argv[1], shard_id=0, index_schema=SHARD_INDEX_SCHEMA) as w:
    for i in range(50):
        w.write(key=f"{i:05d}", files={"jpg": os.urandom(5000)})
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_writer_leaves_no_visible_shard(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00000.tar.partial"]  # only the temporary name, which no reader globs
    assert not shard_is_complete(tmp_path, 0)
    # A re-run of the same shard replaces the leftover and completes.
    write_shard(tmp_path, make_samples(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.parquet", "00000.tar", "00000_stats.json"]


@pytest.mark.parametrize(
    ("key", "message"),
    [("a.b", "invalid sample key"), ("../x", "invalid sample key"), ("", "invalid sample key"), ("/abs", "invalid")],
)
def test_writer_rejects_bad_keys(tmp_path, key, message):
    with (
        ShardWriter(out_dir=tmp_path, shard_id=0, index_schema=SHARD_INDEX_SCHEMA) as w,
        pytest.raises(ValueError, match=message),
    ):
        w.write(key=key, files={"jpg": b"x"})


def test_writer_validates_arguments(tmp_path):
    with pytest.raises(TypeError):
        ShardWriter(tmp_path, 0, SHARD_INDEX_SCHEMA)  # keyword-only
    with pytest.raises(ValueError, match="shard_id"):
        ShardWriter(out_dir=tmp_path, shard_id=100_000, index_schema=SHARD_INDEX_SCHEMA)
    with pytest.raises(ValueError, match="base fields"):
        ShardWriter(out_dir=tmp_path, shard_id=0, index_schema=pa.schema([pa.field("key", pa.string())]))
    with ShardWriter(out_dir=tmp_path, shard_id=0, index_schema=SHARD_INDEX_SCHEMA) as w:
        w.write(key="k1", files={"jpg": b"x"})
        with pytest.raises(ValueError, match="duplicate"):
            w.write(key="k1", files={"jpg": b"y"})
        with pytest.raises(ValueError, match="not in the index schema"):
            w.write(key="k2", files={"jpg": b"y"}, index={"colour": "red"})
        with pytest.raises(ValueError, match="no files"):
            w.write(key="k3", files={})
    assert read_index(shard_paths(tmp_path, 0)["parquet"])["key"].to_pylist() == ["k1"]
    extended = pa.schema([*SHARD_BASE_FIELDS, pa.field("cluster", pa.int32())])
    with ShardWriter(out_dir=tmp_path, shard_id=1, index_schema=extended) as w:
        w.write(key="k", files={"jpg": b"x"}, index={"cluster": 4})
    assert read_index(shard_paths(tmp_path, 1)["parquet"]).to_pylist()[0]["cluster"] == 4


def _tar_with(path, name: str, *, kind=tarfile.REGTYPE, data: bytes = b"data") -> None:
    with tarfile.open(path, "w") as tar:
        good = tarfile.TarInfo("ok.jpg")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"good"))
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        else:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("/etc/evil.jpg", tarfile.REGTYPE, "absolute path"),
        ("../evil.jpg", tarfile.REGTYPE, r"'\.\.'"),
        ("a/../../evil.jpg", tarfile.REGTYPE, r"'\.\.'"),
        ("link.jpg", tarfile.SYMTYPE, "not a regular file"),
    ],
)
def test_reader_refuses_unsafe_members(tmp_path, name, kind, message):
    path = tmp_path / "bad.tar"
    _tar_with(path, name, kind=kind)
    with pytest.raises(UnsafeTarError, match=message):
        list(iter_shard(path))


def test_reader_caps_member_size(tmp_path):
    path = tmp_path / "big.tar"
    _tar_with(path, "big.jpg", data=b"\0" * 2048)
    assert len(list(iter_shard(path, max_member_bytes=4096))) == 2
    with pytest.raises(UnsafeTarError, match="over the 1024 cap"):
        list(iter_shard(path, max_member_bytes=1024))


def test_reader_handles_gzip_and_unnamed_members(tmp_path):
    path = tmp_path / "s.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("d/a.jpg", b"1"), ("d/a.json", b"{}"), ("d/b.jpg", b"2")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert list(iter_shard(path)) == [{"__key__": "d/a", "jpg": b"1", "json": b"{}"}, {"__key__": "d/b", "jpg": b"2"}]
    assert os.path.getsize(path) > 0
