"""Arrow schemas of the sample corpus: its img2dataset-like shard index and its manifest."""

import pyarrow as pa

from common.schemas import SHARD_BASE_FIELDS

# What img2dataset writes next to each tar (a subset): every sample here "downloaded" fine, bad bytes included.
RAW_INDEX_SCHEMA = pa.schema(
    [
        *SHARD_BASE_FIELDS,
        pa.field("url", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
    ]
)

# One row per file of the corpus, with what the decoder is expected to make of it.
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),  # the path in images/ without its extension
        pa.field("path", pa.string(), nullable=False),  # relative to images/
        pa.field("key", pa.string(), nullable=False),  # sample key in the tars
        pa.field("shard", pa.string(), nullable=False),  # tar the sample is in, e.g. "00000"
        pa.field("kind", pa.string(), nullable=False),
        pa.field("origin", pa.string()),  # the original the file derives from
        pa.field("expected_reason", pa.string()),  # null = valid under the default DecodeConfig
        pa.field("width", pa.int32()),  # expected size after orientation; null where the decoder cannot know it
        pa.field("height", pa.int32()),
        pa.field("num_bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
    ]
)
