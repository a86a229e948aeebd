"""Reading WebDataset shards: whole-tar iteration, the parquet index, and random access by index row."""

import io
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.filesystem import open_input_file, open_input_stream, resolve
from common.safe_tar import MAX_MEMBER_BYTES, iter_tar_members

Sample = dict[str, Any]  # "__key__" -> str, extension -> bytes


def split_member_name(name: str) -> tuple[str, str]:
    """WebDataset's convention: the key runs to the first dot of the base name, the extension (maybe "") is the rest."""
    directory, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext


def group_samples(members: Iterator[tuple[str, bytes]]) -> Iterator[Sample]:
    sample: Sample | None = None
    for name, data in members:
        key, ext = split_member_name(name)
        if not key.rpartition("/")[2] or not ext:
            raise ValueError(f"tar member {name!r} has no key.extension name")
        if sample is None or sample["__key__"] != key:
            if sample is not None:
                yield sample
            sample = {"__key__": key}
        if ext in sample:
            raise ValueError(f"sample {key!r} has two {ext!r} members")
        sample[ext] = data
    if sample is not None:
        yield sample


def iter_shard(path: str | os.PathLike, *, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[Sample]:
    """Samples of a tar in order; unsafe members raise common.safe_tar.UnsafeTarError."""
    with open_input_stream(path) as stream:
        yield from group_samples(iter_tar_members(stream, max_member_bytes=max_member_bytes))


def read_index(path: str | os.PathLike) -> pa.Table:
    fs, inner = resolve(path)
    return pq.read_table(inner, filesystem=fs)


def read_sample_at(tar_path: str | os.PathLike, *, tar_offset: int, tar_bytes: int) -> Sample:
    """One sample by the byte range its index row records, without reading the rest of the tar."""
    with open_input_file(tar_path) as f:
        f.seek(tar_offset)
        chunk = f.read(tar_bytes)
    if len(chunk) != tar_bytes:
        raise ValueError(f"{tar_path}: expected {tar_bytes} bytes at offset {tar_offset}, got {len(chunk)}")
    # Two zero blocks close the fragment so tarfile sees a complete archive.
    samples = list(group_samples(iter_tar_members(io.BytesIO(chunk + b"\0" * 1024))))
    if len(samples) != 1:
        raise ValueError(f"{tar_path}: byte range at {tar_offset} holds {len(samples)} samples, expected 1")
    return samples[0]
