"""The URL of each image of an img2dataset shard (`00000.tar` + `00000.parquet` beside it), keyed like the tar
reader keys its rows, so a candidate can carry where it was downloaded from into the report.

The tar reader already reads these tars (discover skips the index parquet); this adds what only the index holds.
"""

import logging
import tarfile

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from common.keys import sample_key
from common.shard_reader import split_member_name
from curation.readers.open_input import InputTree, Refused
from curation.readers.shard import IMAGE_EXTENSIONS, PARQUET_SUFFIX, TAR_SUFFIXES, InputShard

log = logging.getLogger(__name__)

URL_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("url", pa.string())])


def index_path(tar_uri: str) -> str | None:
    """The img2dataset index beside a tar (`00000.tar` -> `00000.parquet`), or None for another name."""
    location, question, query = tar_uri.partition("?")
    for suffix in TAR_SUFFIXES:
        if location.lower().endswith(suffix):
            return location[: -len(suffix)] + PARQUET_SUFFIX + question + query
    return None


def read_img2dataset_urls(shard: InputShard) -> pa.Table:
    """`key` (as read_tar_shard computes it) and `url` of every image member whose sample the index lists; empty
    when the shard is not a tar or has no index with `key` and `url` columns. Both files are opened through
    InputTree: an index that is a symlink out of the tree or a FIFO counts as no index."""
    index_name = index_path(shard.paths[0]) if shard.kind == "tar" else None
    if index_name is None:
        return URL_SCHEMA.empty_table()
    tree = InputTree(shard.root)
    if tree.fs.get_file_info(f"{tree.base.rstrip('/')}/{index_name}").type != pafs.FileType.File:
        return URL_SCHEMA.empty_table()
    try:
        with tree.open(index_name, seekable=True) as handle:
            index = pq.read_table(handle)
    except Refused as e:
        log.warning("img2dataset index not read, its URLs are left out: %s", e)
        return URL_SCHEMA.empty_table()
    if not {"key", "url"} <= set(index.column_names):
        return URL_SCHEMA.empty_table()
    url_of = dict(zip(index["key"].to_pylist(), index["url"].to_pylist(), strict=True))
    key_source = shard.key_source(shard.paths[0])
    keys, urls = [], []
    try:
        with (
            tree.open(shard.paths[0]) as stream,
            tarfile.open(fileobj=stream, mode="r|*") as tar,
        ):
            for info in tar:  # headers only: the data of each member is skipped unread
                sample, ext = split_member_name(info.name)
                if info.isfile() and ext.lower() in IMAGE_EXTENSIONS and sample in url_of:
                    keys.append(sample_key(key_source, info.name))
                    urls.append(url_of[sample])
    except Refused as e:  # the score read gave this tar its row and reason
        log.warning("img2dataset tar not read: %s", e)
        return URL_SCHEMA.empty_table()
    return pa.table({"key": keys, "url": urls}, schema=URL_SCHEMA)
