"""Reads tar members back by the byte range the tar reader recorded (`member_offset`, `member_bytes`): one bounded
read per member, the members of a source in offset order, so the write phase reads about what it writes instead of
streaming whole tars to pick members out.

Each read starts one 512-byte block early, at the member's own tar header: its checksum, its type (a regular file)
and its size must match the recorded range, so a tar that was rewritten or replaced since the score phase gives a
failure rather than someone else's bytes. The header's name is not compared: pax and GNU writers store long and
non-ASCII names elsewhere and leave a truncated or substituted name in this block.
"""

import logging
import tarfile
from collections import defaultdict
from collections.abc import Iterable
from typing import BinaryIO

import pyarrow as pa

from curation.readers.open_input import Refused, open_source
from curation.readers.rows import MAX_FILE_BYTES

log = logging.getLogger(__name__)

Range = tuple[str, int, int]  # (source, offset of the member's data, its size in bytes)

_BLOCK = tarfile.BLOCKSIZE


def valid_range(offset: int, size: int, max_file_bytes: int = MAX_FILE_BYTES) -> bool:
    """Whether a recorded range can be read at all: room for a header before it, a size within the decode cap."""
    return offset >= _BLOCK and 0 <= size <= max_file_bytes


def read_ranges(ranges: Iterable[Range], *, max_file_bytes: int = MAX_FILE_BYTES) -> dict[Range, bytes]:
    """The bytes of each range that can still be read as recorded; a hostile, short or changed one is absent from
    the result (logged), so the caller records its loss."""
    by_source: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for source, offset, size in ranges:
        if valid_range(offset, size, max_file_bytes):
            by_source[source].add((offset, size))
        else:
            log.warning("%s: refused range of %d bytes at offset %d (cap %d)", source, size, offset, max_file_bytes)
    found: dict[Range, bytes] = {}
    for source, spans in sorted(by_source.items()):
        try:
            with open_source(source, seekable=True) as handle:
                for offset, size in sorted(spans):  # forward through the file: no seek backwards
                    data = _read_member(handle, offset, size)
                    if data is None:
                        log.warning("%s: no tar member of %d bytes at offset %d", source, size, offset)
                    else:
                        found[(source, offset, size)] = data
        except (OSError, pa.ArrowException, Refused) as e:
            log.warning("cannot read back %s: %s", source, e)
    return found


def _read_member(handle: BinaryIO | pa.NativeFile, offset: int, size: int) -> bytes | None:
    """The `size` bytes at `offset`, if the block before them is the header of a regular file of that size."""
    handle.seek(offset - _BLOCK)
    chunk = handle.read(_BLOCK + size)
    if len(chunk) != _BLOCK + size:  # past the end of the file, or the file shrank
        return None
    try:
        header = tarfile.TarInfo.frombuf(chunk[:_BLOCK], "utf-8", "backslashreplace")
    except tarfile.HeaderError:
        return None
    if not header.isfile() or header.size != size:
        return None
    return chunk[_BLOCK:]
