"""Size and SHA-256 of a file, computed while its bytes are written so it costs no second read.

A completion marker records one `{"bytes": N, "sha256": "<hex>"}` per file it vouches for (`common.marker_check`
checks them on resume). Tars stream through a `HashingWriter`; a parquet file is serialised in memory, hashed and
then written (`write_parquet`), which gives the same bytes as writing it straight to disk.
"""

import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Self

import pyarrow as pa
import pyarrow.parquet as pq

FileRecord = dict[str, int | str]  # {"bytes": N, "sha256": "<hex>"}
_CHUNK = 1 << 20


def record_of(data: bytes | memoryview) -> FileRecord:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def record_file(path: str | os.PathLike) -> FileRecord:
    """Reads the whole file: for files already written by someone else; writers should hash as they write."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": sha.hexdigest()}


class HashingWriter:
    """Wraps a binary file opened for writing: every byte written goes into the SHA-256 and the count.

    Enough of the file API for tarfile's stream mode ("w|"), which only ever calls write.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        self._raw.write(view)  # a buffered file writes everything it is given
        self._sha.update(view)
        self.bytes += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record(self) -> FileRecord:
        return {"bytes": self.bytes, "sha256": self._sha.hexdigest()}


def write_parquet(table: pa.Table, path: str | os.PathLike) -> FileRecord:
    """Write `table` to `path` and return the file's record; the file is built in memory (small files only)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue()
    Path(path).write_bytes(memoryview(data))
    return record_of(memoryview(data))
