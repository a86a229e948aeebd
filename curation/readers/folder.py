"""A chunk of image files from a folder: one row per file, bytes read whole up to the size cap.

A chunk also holds the entries discovery found must not be read (symlinks out of the tree, dangling ones, FIFOs,
sockets, devices); opening through InputTree finds them again, so each gets its row and reason here.
"""

import logging

import pyarrow as pa

from common.reasons import RejectReason
from curation.readers.open_input import InputTree, Refused
from curation.readers.rows import MAX_FILE_BYTES, ShardRows
from curation.readers.shard import InputShard, is_utf8, printable

log = logging.getLogger(__name__)


def read_folder_shard(shard: InputShard, *, max_file_bytes: int = MAX_FILE_BYTES) -> pa.Table:
    """One row per file of the chunk, in its sorted order; member is null."""
    rows = ShardRows(shard.shard_id)
    tree = InputTree(shard.root)
    for path, source in zip(shard.paths, shard.uris, strict=True):
        image, reason = None, None
        if not is_utf8(path):
            # Sources must be UTF-8 to be stored and fetched again by the write phase: recorded, not read.
            log.warning("%r is not a valid UTF-8 file name: rename it (e.g. with convmv) to have it read", source)
            rows.add(
                source=printable(source),
                key_source=printable(shard.key_source(path)),
                member=None,
                image=None,
                reason=RejectReason.BAD_FILE_NAME,
            )
            continue
        try:
            # Read as stored, whatever its extension suggests.
            with tree.open(path) as stream:
                image = stream.read(max_file_bytes + 1)  # one byte over the cap is enough to know
        except Refused as e:
            log.warning("not opened: %s", e)
            reason = e.reason
        except OSError as e:
            log.warning("cannot read %s: %s", source, e)
            reason = RejectReason.READ_ERROR
        if image is not None and len(image) > max_file_bytes:
            reason = RejectReason.FILE_TOO_LARGE
        rows.add(source=source, key_source=shard.key_source(path), member=None, image=image, reason=reason)
    return rows.table()
