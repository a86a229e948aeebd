"""Parquet files with a column of image bytes: a plain binary column, or HF datasets' struct {bytes, path}."""

import logging

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.reasons import RejectReason
from curation.readers.open_input import InputTree, Refused
from curation.readers.rows import MAX_FILE_BYTES, ShardRows
from curation.readers.shard import InputShard

log = logging.getLogger(__name__)

# Names tried in this order when no column is given; then a single struct column with a binary `bytes` field.
IMAGE_COLUMNS = ("jpg", "image", "bytes", "image_bytes")


def _is_binary(dtype: pa.DataType) -> bool:
    return pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype)


def _is_image_struct(dtype: pa.DataType) -> bool:
    return pa.types.is_struct(dtype) and dtype.get_field_index("bytes") != -1 and _is_binary(dtype.field("bytes").type)


def detect_image_column(schema: pa.Schema, image_column: str | None = None) -> str | None:
    """The column holding image bytes: `image_column` if it does, else auto-detected; None if there is none."""
    holds_bytes = {f.name for f in schema if _is_binary(f.type) or _is_image_struct(f.type)}
    if image_column is not None:
        return image_column if image_column in holds_bytes else None
    for name in IMAGE_COLUMNS:
        if name in holds_bytes:
            return name
    structs = [f.name for f in schema if _is_image_struct(f.type)]
    return structs[0] if len(structs) == 1 else None


def image_column_of(tree: InputTree, path: str, image_column: str | None) -> tuple[str | None, bool]:
    """(image column, whether the schema could be read) of the file `path` of `tree`. An unreadable file stays an
    input: its read records why."""
    try:
        with tree.open(path, seekable=True) as handle:
            schema = pq.read_schema(handle)
    except (OSError, pa.ArrowException, Refused) as e:
        log.warning("cannot read the schema of %s (%s); it is kept as an input so its damage is recorded", path, e)
        return None, False
    return detect_image_column(schema, image_column), True


def read_parquet_shard(shard: InputShard, *, max_file_bytes: int = MAX_FILE_BYTES) -> pa.Table:
    """One row per parquet row, member = row index; an unreadable row group gives a damaged row per row in it."""
    rows = ShardRows(shard.shard_id)
    source, key_source = shard.uris[0], shard.key_source(shard.paths[0])

    def add(member: str | None, image: bytes | None, reason: str | None = None) -> None:
        rows.add(source=source, key_source=key_source, member=member, image=image, reason=reason)

    try:
        handle = InputTree(shard.root).open(shard.paths[0], seekable=True)
    except Refused as e:
        log.warning("not opened: %s", e)
        add(None, None, e.reason)
        return rows.table()
    except OSError as e:
        log.warning("cannot open %s: %s", source, e)
        add(None, None, RejectReason.READ_ERROR)
        return rows.table()
    with handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (OSError, pa.ArrowException) as e:
            log.warning("%s is not a readable parquet file: %s", source, e)
            add(None, None, RejectReason.ARCHIVE_DAMAGED)
            return rows.table()
        column = shard.image_column or detect_image_column(parquet.schema_arrow)
        if column is None:
            log.warning("%s has no image column (tried %s and struct {bytes, path})", source, IMAGE_COLUMNS)
            add(None, None, RejectReason.READ_ERROR)
            return rows.table()
        row = 0
        for group in range(parquet.num_row_groups):
            n = parquet.metadata.row_group(group).num_rows
            try:
                values = parquet.read_row_group(group, columns=[column]).column(0)
            except (OSError, pa.ArrowException) as e:
                log.warning("%s: row group %d (rows %d-%d) is unreadable: %s", source, group, row, row + n - 1, e)
                for i in range(row, row + n):
                    add(str(i), None, RejectReason.ARCHIVE_DAMAGED)
                row += n
                continue
            if _is_image_struct(values.type):
                values = pc.struct_field(values, "bytes")
            for data in values.to_pylist():
                if data is None:
                    add(str(row), None, RejectReason.NULL_IMAGE)
                elif len(data) > max_file_bytes:
                    add(str(row), None, RejectReason.FILE_TOO_LARGE)
                else:
                    add(str(row), data)
                row += 1
    return rows.table()
