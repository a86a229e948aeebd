"""Reads the bytes of already-scored rows back from their sources by (source, member): the write phase and the
report need pixels again, and the score phase keeps none. One pass per source file, whatever the row count.
Tar members with a recorded byte range are read by that range instead (curation.readers.ranged)."""

import logging
import tarfile
from collections import defaultdict
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.safe_tar import UnsafeTarError, check_member_name
from curation.readers.open_input import Refused, open_source
from curation.readers.parquet import _is_image_struct, detect_image_column
from curation.readers.rows import MAX_FILE_BYTES
from curation.readers.shard import PARQUET_SUFFIX, TAR_SUFFIXES

log = logging.getLogger(__name__)

Location = tuple[str, str | None]  # (source, member): a candidate row's columns of the same names


def _suffix_of(source: str) -> str:
    return source.partition("?")[0].lower()


def fetch_images(locations: Iterable[Location], *, max_file_bytes: int = MAX_FILE_BYTES) -> dict[Location, bytes]:
    """The bytes at each location that can still be read; a missing, changed or oversized one is absent from the
    result (logged), so the caller decides what its loss means."""
    by_source: dict[str, set[str | None]] = defaultdict(set)
    for source, member in locations:
        by_source[source].add(member)
    found: dict[Location, bytes] = {}
    for source, members in sorted(by_source.items()):
        try:
            if None in members:
                data = _read_file(source, max_file_bytes)
                if data is not None:
                    found[(source, None)] = data
            named = {m for m in members if m is not None}
            if named and _suffix_of(source).endswith(TAR_SUFFIXES):
                got = _read_tar_members(source, named, max_file_bytes)
            elif named and _suffix_of(source).endswith(PARQUET_SUFFIX):
                got = _read_parquet_rows(source, named, max_file_bytes)
            else:
                got = {}
        except (OSError, tarfile.TarError, EOFError, pa.ArrowException, Refused) as e:
            log.warning("cannot read back %s: %s", source, e)
            continue
        for member, data in got.items():
            found[(source, member)] = data
        missing = sorted(m for m in named if m not in got)
        if missing:
            log.warning("%s: %d members no longer readable (first: %s)", source, len(missing), missing[0])
    return found


def _read_file(source: str, max_file_bytes: int) -> bytes | None:
    with open_source(source) as stream:  # a file swapped for a FIFO or device since the score phase is refused
        data = stream.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        log.warning("%s is over %d bytes", source, max_file_bytes)
        return None
    return data


def _read_tar_members(source: str, wanted: set[str], max_file_bytes: int) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    with (
        open_source(source) as stream,
        tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="backslashreplace") as tar,
    ):
        for info in tar:
            if info.name not in wanted or info.name in got:
                continue
            try:
                check_member_name(info.name)
            except UnsafeTarError:
                continue
            if info.isfile() and info.size <= max_file_bytes:
                got[info.name] = tar.extractfile(info).read()
            if len(got) == len(wanted):
                break
    return got


def _read_parquet_rows(source: str, wanted: set[str], max_file_bytes: int) -> dict[str, bytes]:
    rows = {int(m): m for m in wanted if m.isdigit()}
    got: dict[str, bytes] = {}
    with open_source(source, seekable=True) as handle:
        parquet = pq.ParquetFile(handle)
        column = detect_image_column(parquet.schema_arrow)
        if column is None:
            return got
        start = 0
        for group in range(parquet.metadata.num_row_groups):
            n = parquet.metadata.row_group(group).num_rows
            needed = [r for r in rows if start <= r < start + n]
            if needed:
                values = parquet.read_row_group(group, columns=[column]).column(0)
                if _is_image_struct(values.type):
                    values = pc.struct_field(values, "bytes")
                for r in needed:
                    data = values[r - start].as_py()
                    if data is not None and len(data) <= max_file_bytes:
                        got[rows[r]] = data
            start += n
    return got
