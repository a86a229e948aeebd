"""Read one input shard, whatever its kind, into rows of READ_SCHEMA."""

import logging

import pyarrow as pa

from common.reasons import RejectReason
from curation.readers.folder import read_folder_shard
from curation.readers.parquet import read_parquet_shard
from curation.readers.rows import MAX_FILE_BYTES, ShardRows
from curation.readers.shard import InputShard, is_utf8, printable
from curation.readers.tar import read_tar_shard

log = logging.getLogger(__name__)

_READERS = {"folder": read_folder_shard, "tar": read_tar_shard, "parquet": read_parquet_shard}


def read_input_shard(shard: InputShard, *, max_file_bytes: int = MAX_FILE_BYTES) -> pa.Table:
    """Every sample of the shard as a row, in a fixed order; what cannot be read is a row with a reject_reason.

    A shard gives no rows only when it holds no samples (an empty tar or parquet file).
    """
    if shard.kind != "folder" and not is_utf8(shard.paths[0]):
        # A tar or parquet file whose name is not UTF-8 cannot be opened through pyarrow: one row records it.
        log.warning("%r is not a valid UTF-8 file name: rename it (e.g. with convmv) to have it read", shard.uri)
        rows = ShardRows(shard.shard_id)
        rows.add(
            source=printable(shard.uri),
            key_source=printable(shard.key_source(shard.paths[0])),
            member=None,
            image=None,
            reason=RejectReason.BAD_FILE_NAME,
        )
        return rows.table()
    return _READERS[shard.kind](shard, max_file_bytes=max_file_bytes)
