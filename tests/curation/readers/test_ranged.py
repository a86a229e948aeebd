"""Tar members read back by the byte range the tar reader recorded: the ranges are tarfile's own, they give the exact
member bytes, and a hostile range is a missing result, never a crash or a large read."""

import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from curation.readers import discover_input_shards, read_input_shard
from curation.readers.ranged import read_ranges
from curation.sample_corpus import SampleCorpus, SampleCorpusConfig, build_sample_corpus

LONG = "deep/" * 30 + "000000001.jpg"  # over 100 bytes: pax and GNU put it in an extra header before the member's own


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SampleCorpus:
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(samples_per_shard=16))


def write_tar(path: Path, members: dict[str, bytes], fmt: int) -> Path:
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tarfile_ranges(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """member -> (offset of its data, size, bytes), as tarfile itself reports them on random access."""
    with tarfile.open(path) as tar:
        return {i.name: (i.offset_data, i.size, tar.extractfile(i).read()) for i in tar if i.isfile()}


def reader_rows(inputs: list[str]) -> list[dict]:
    rows = []
    for shard in discover_input_shards(inputs, files_per_shard=7):
        rows += [r for r in read_input_shard(shard).to_pylist() if r["image"] is not None]
    return rows


def test_recorded_ranges_are_tarfiles_and_read_back_the_member(corpus):
    rows = reader_rows([str(corpus.tars_dir)])
    assert len(rows) >= 40
    reference = {}
    for tar in corpus.tars_dir.glob("*.tar"):
        reference |= {(str(tar), name): v for name, v in tarfile_ranges(tar).items()}
    for row in rows:
        offset, size, data = reference[(row["source"], row["member"])]
        assert (row["member_offset"], row["member_bytes"]) == (offset, size)
        assert row["image"] == data
    ranges = [(r["source"], r["member_offset"], r["member_bytes"]) for r in rows]
    got = read_ranges(ranges[::-1])  # any order in, one forward pass per source
    assert got == {rng: row["image"] for rng, row in zip(ranges, rows, strict=True)}


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_extended_headers_and_non_ascii_names(tmp_path, fmt):
    members = {"000000000.jpg": b"a" * 700, "café/000000002.png": b"c" * 3, "000000003.jpg": b""}
    if fmt != tarfile.USTAR_FORMAT:  # ustar cannot hold a 100-byte name without a '/' split; pax and GNU can
        members[LONG] = b"b" * 1025
    path = write_tar(tmp_path / "x.tar", members, fmt)
    rows = {r["member"]: r for r in reader_rows([str(path)])}
    assert set(rows) == set(members)
    reference = tarfile_ranges(path)
    for name, row in rows.items():
        assert (row["member_offset"], row["member_bytes"]) == reference[name][:2]
    got = read_ranges((str(path), r["member_offset"], r["member_bytes"]) for r in rows.values())
    assert sorted(got.values()) == sorted(members.values())


def test_compressed_tars_and_loose_files_record_no_range(corpus, tmp_path):
    path = tmp_path / "x.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(corpus.images_dir / corpus.entries[0].path, arcname="000000000.jpg")
    for inputs in ([str(path)], [str(corpus.images_dir)]):
        rows = reader_rows(inputs)
        assert rows and all(r["member_offset"] is None and r["member_bytes"] is None for r in rows)


def test_hostile_ranges_are_left_out_without_large_reads(tmp_path):
    path = write_tar(tmp_path / "x.tar", {"000000000.jpg": b"a" * 700, "000000001.jpg": b"b" * 300}, tarfile.PAX_FORMAT)
    source, size = str(path), path.stat().st_size
    good = (source, 512, 700)
    hostile = [
        (source, -512, 700),  # negative offset
        (source, 512, -1),  # negative size
        (source, 512, 2**62),  # a size no reader may allocate
        (source, 512, 64 * 1024 * 1024 + 1),  # just over the decode cap
        (source, size + 10**12, 10),  # beyond the end of the file
        (source, size - 100, 500),  # runs past the end
        (source, 0, 10),  # no room for a header before it
        (source, 1024, 100),  # inside a member's data: no tar header before it
        (source, 512, 699),  # the right place, the wrong size
        (str(tmp_path / "gone.tar"), 512, 700),  # the source is gone
    ]
    tracemalloc.start()
    try:
        got = read_ranges([good, *hostile])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == {good: b"a" * 700}
    assert peak < 1024 * 1024


def test_the_cap_is_the_callers(tmp_path):
    path = write_tar(tmp_path / "x.tar", {"000000000.jpg": b"a" * 700}, tarfile.PAX_FORMAT)
    assert read_ranges([(str(path), 512, 700)], max_file_bytes=699) == {}
