"""Tars that an untrusted crawl can hand over: unsafe members, damage, odd samples. Rows, never exceptions."""

import gzip
import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest

from common.keys import sample_key
from common.reasons import RejectReason
from curation.readers import READ_SCHEMA, InputShard, discover_input_shards, read_input_shard

N_SAMPLES = 6


def image_bytes(i: int) -> bytes:
    return bytes([i]) * (700 + 300 * i)  # sizes straddle tar's 512-byte blocks


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 946684800
    tar.addfile(info, io.BytesIO(data))


def write_tar(path: Path, members: list[tuple[str, bytes]], *, extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            add_file(tar, name, data)
        for info in extra:
            tar.addfile(info)
    return path


def webdataset_members(n: int = N_SAMPLES) -> list[tuple[str, bytes]]:
    members = []
    for i in range(n):
        members += [(f"{i:05d}.jpg", image_bytes(i)), (f"{i:05d}.json", b'{"url": "x"}')]
    return members


def read(path: Path, **kwargs) -> list[dict]:
    (shard,) = discover_input_shards([str(path)])
    table = read_input_shard(shard, **kwargs)
    assert table.schema.equals(READ_SCHEMA)
    assert set(table["shard_rows"].to_pylist()) == {table.num_rows}
    keys = table["key"].to_pylist()
    assert len(set(keys)) == len(keys)
    assert keys == [sample_key(shard.key_source(shard.paths[0]), m) for m in table["member"].to_pylist()]
    data = path.read_bytes()
    for r in table.to_pylist():  # an uncompressed tar's image rows locate their bytes; no other row does
        if r["image"] is None or data[:2] == b"\x1f\x8b":
            assert r["member_offset"] is None and r["member_bytes"] is None
        else:
            assert data[r["member_offset"] : r["member_offset"] + r["member_bytes"]] == r["image"]
    return table.drop_columns(["key", "source", "shard_id", "shard_rows", "member_offset", "member_bytes"]).to_pylist()


def row(member: str | None, image: bytes | None = None, reason: str | None = None) -> dict:
    return {"member": member, "image": image, "reject_reason": reason}


def good_rows(n: int) -> list[dict]:
    return [row(f"{i:05d}.jpg", image_bytes(i)) for i in range(n)]


def member_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (offset of its header, offset of its data)."""
    with tarfile.open(path) as tar:
        return {m.name: (m.offset, m.offset_data) for m in tar.getmembers()}


def test_a_clean_tar_plain_and_gzipped(tmp_path):
    plain = write_tar(tmp_path / "clean.tar", webdataset_members())
    assert read(plain) == good_rows(N_SAMPLES)
    gz = tmp_path / "clean.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    assert read(gz) == good_rows(N_SAMPLES)


def test_unsafe_members_are_recorded_and_reading_goes_on(tmp_path):
    link = tarfile.TarInfo("00002.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    device = tarfile.TarInfo("00003.jpg")
    device.type = tarfile.CHRTYPE
    members = [
        ("00000.jpg", image_bytes(0)),
        ("../escape.jpg", b"x"),
        ("/abs/path.jpg", b"y"),
        ("00001.jpg", image_bytes(1)),
    ]
    path = write_tar(tmp_path / "unsafe.tar", members, extra=[link, device])
    with tarfile.open(path, "a", format=tarfile.USTAR_FORMAT) as tar:
        add_file(tar, "00004.jpg", image_bytes(4))
    unsafe = RejectReason.UNSAFE_MEMBER
    assert read(path) == [
        row("00000.jpg", image_bytes(0)),
        row("../escape.jpg", reason=unsafe),
        row("/abs/path.jpg", reason=unsafe),
        row("00001.jpg", image_bytes(1)),
        row("00002.jpg", reason=unsafe),
        row("00003.jpg", reason=unsafe),
        row("00004.jpg", image_bytes(4)),
    ]


@pytest.mark.parametrize("where", ["mid_data", "at_header", "mid_header"])
def test_a_truncated_tar_keeps_what_came_before_and_records_the_cut(tmp_path, where):
    path = write_tar(tmp_path / "full.tar", webdataset_members())
    header, data = member_offsets(path)["00003.jpg"]
    cut = {"mid_data": data + 100, "at_header": header, "mid_header": header + 100}[where]
    truncated = tmp_path / f"{where}.tar"
    truncated.write_bytes(path.read_bytes()[:cut])
    # The failure row names the image being read; a cut in or before a header names no member.
    failed = "00003.jpg" if where == "mid_data" else None
    assert read(truncated) == [*good_rows(3), row(failed, reason=RejectReason.ARCHIVE_DAMAGED)]


def test_a_cut_before_a_samples_image_is_recorded_on_that_sample(tmp_path):
    members = [
        (f"{i:05d}.{ext}", b"{}" if ext == "json" else image_bytes(i)) for i in range(4) for ext in ("json", "jpg")
    ]
    path = write_tar(tmp_path / "full.tar", members)
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(path.read_bytes()[: member_offsets(path)["00002.jpg"][0]])
    assert read(truncated) == [*good_rows(2), row("00002", reason=RejectReason.ARCHIVE_DAMAGED)]


def test_a_corrupt_header_or_gzip_stream_mid_way(tmp_path):
    path = write_tar(tmp_path / "full.tar", webdataset_members())
    header, _ = member_offsets(path)["00001.json"]
    raw = bytearray(path.read_bytes())
    raw[header + 148 : header + 156] = b"9999999\0"  # the header checksum
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(bytes(raw))
    damaged = RejectReason.ARCHIVE_DAMAGED
    assert read(corrupt) == [*good_rows(2), row(None, reason=damaged)]

    gz = gzip.compress(path.read_bytes(), mtime=0)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(gz[: len(gz) // 2])
    rows = read(cut)
    assert rows[-1]["reject_reason"] == damaged
    assert rows[:-1] == good_rows(len(rows) - 1) and len(rows) > 1

    for name, content in (("empty.tar", b""), ("text.tar", b"<html>not a tar</html>" * 100)):
        (tmp_path / name).write_bytes(content)
        assert read(tmp_path / name) == [row(None, reason=damaged)]


def test_every_sample_is_accounted_for(tmp_path):
    members = [
        ("a.jpg", b"A"),
        ("a.json", b"{}"),
        ("b.json", b"{}"),  # metadata only
        ("b.txt", b"caption"),
        ("c.JPEG", b"C"),  # extensions match case-insensitively
        ("c.seg.png", b"not the sample's image"),
        ("README", b"no extension"),
        ("a.jpg", b"again"),
        ("d.jpg", b"D" * 200),
    ]
    assert read(write_tar(tmp_path / "odd.tar", members), max_file_bytes=100) == [
        row("a.jpg", b"A"),
        row("b", reason=RejectReason.NO_IMAGE_MEMBER),
        row("c.JPEG", b"C"),
        row("README", reason=RejectReason.NO_IMAGE_MEMBER),
        row("a.jpg#2", reason=RejectReason.DUPLICATE_MEMBER),
        row("d.jpg", reason=RejectReason.FILE_TOO_LARGE),
    ]


def test_a_tar_without_samples_gives_no_rows(tmp_path):
    path = write_tar(tmp_path / "empty.tar", [])
    (shard,) = discover_input_shards([str(path)])
    assert read_input_shard(shard).num_rows == 0


def test_an_unreadable_tar_is_a_row(tmp_path):
    shard = InputShard(0, "tar", str(tmp_path), ("gone.tar",))
    table = read_input_shard(shard)
    assert table.to_pylist() == [
        {
            "key": sample_key("gone.tar", None),
            "source": str(tmp_path / "gone.tar"),
            "member": None,
            "member_offset": None,
            "member_bytes": None,
            "image": None,
            "shard_id": 0,
            "shard_rows": 1,
            "reject_reason": RejectReason.READ_ERROR,
        }
    ]
    assert isinstance(table, pa.Table)
