"""The rows every reader returns: their schema, the reasons a read can fail, and a builder that keys them."""

import logging

import pyarrow as pa

from common.keys import sample_key
from common.reasons import RejectReason

log = logging.getLogger(__name__)

# Untrusted input: no single image file, tar member or parquet cell is read past this many bytes.
MAX_FILE_BYTES = 64 * 1024 * 1024

READ_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # where the bytes live: local absolute path or URI
        pa.field("member", pa.string()),  # tar member name or parquet row index; null for plain files
        pa.field("member_offset", pa.int64()),  # byte offset of an uncompressed tar member's data; else null
        pa.field("member_bytes", pa.int64()),  # its size: the write phase reads exactly this range back
        pa.field("image", pa.binary()),  # null when the bytes could not be read (see reject_reason)
        pa.field("shard_id", pa.int32(), nullable=False),
        pa.field("shard_rows", pa.int32(), nullable=False),  # rows of this shard: the runner's completion count
        pa.field("reject_reason", pa.string()),
    ]
)


# The reasons a read can give; decode and the stages give the rest.
READER_REASONS: tuple[str, ...] = (
    RejectReason.READ_ERROR,
    RejectReason.ARCHIVE_DAMAGED,
    RejectReason.UNSAFE_MEMBER,
    RejectReason.FILE_TOO_LARGE,
    RejectReason.NO_IMAGE_MEMBER,
    RejectReason.DUPLICATE_MEMBER,
    RejectReason.NULL_IMAGE,
    RejectReason.BAD_FILE_NAME,
    RejectReason.SYMLINK_OUTSIDE_INPUT,
    RejectReason.DANGLING_SYMLINK,
    RejectReason.NOT_A_REGULAR_FILE,
)


class ShardRows:
    """Rows of one shard in read order; `table()` stamps the shard id and the final row count on each."""

    def __init__(self, shard_id: int) -> None:
        self.shard_id = shard_id
        self._columns: dict[str, list] = {
            name: [] for name in ("key", "source", "member", "member_offset", "member_bytes", "image", "reject_reason")
        }

    def __len__(self) -> int:
        return len(self._columns["key"])

    def add(
        self,
        *,
        source: str,
        key_source: str,
        member: str | None,
        image: bytes | None,
        reason: str | None = None,
        at: tuple[int, int] | None = None,
    ) -> None:
        """`key_source` is the location-independent name the key is hashed from (see InputShard.key_source); `at` is
        the (offset, size) of the image bytes inside `source`, when they can be read back by that range."""
        if reason is not None:
            log.debug("shard %d: %s %s: %s", self.shard_id, source, member or "", reason)
        for name, value in (
            ("key", sample_key(key_source, member)),
            ("source", source),
            ("member", member),
            ("member_offset", None if reason is not None or at is None else at[0]),
            ("member_bytes", None if reason is not None or at is None else at[1]),
            ("image", None if reason is not None else image),
            ("reject_reason", None if reason is None else str(reason)),
        ):
            self._columns[name].append(value)

    def table(self) -> pa.Table:
        n = len(self)
        columns = {
            **self._columns,
            "shard_id": pa.array([self.shard_id] * n, pa.int32()),
            "shard_rows": pa.array([n] * n, pa.int32()),
        }
        return pa.table({name: columns[name] for name in READ_SCHEMA.names}, schema=READ_SCHEMA)
