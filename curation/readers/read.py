"""Read one input shard, whatever its kind, into rows of READ_SCHEMA."""

import pyarrow as pa

from curation.readers.folder import read_folder_shard
from curation.readers.parquet import read_parquet_shard
from curation.readers.rows import MAX_FILE_BYTES
from curation.readers.shard import InputShard
from curation.readers.tar import read_tar_shard

_READERS = {"folder": read_folder_shard, "tar": read_tar_shard, "parquet": read_parquet_shard}


def read_input_shard(shard: InputShard, *, max_file_bytes: int = MAX_FILE_BYTES) -> pa.Table:
    """Every sample of the shard as a row, in a fixed order; what cannot be read is a row with a reject_reason.

    A shard gives no rows only when it holds no samples (an empty tar or parquet file).
    """
    return _READERS[shard.kind](shard, max_file_bytes=max_file_bytes)
