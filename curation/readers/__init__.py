"""Readers of the score phase's raw inputs: image folders, img2dataset/WebDataset tars, parquet with image bytes.

discover_input_shards lists the inputs as input shards (the unit of work and of resume); read_input_shard reads
one into rows of READ_SCHEMA; read_dataset reads many on Ray Data.
"""

from curation.readers.dataset import read_dataset
from curation.readers.discover import FILES_PER_SHARD, discover_input_shards
from curation.readers.parquet import IMAGE_COLUMNS, detect_image_column
from curation.readers.read import read_input_shard
from curation.readers.rows import MAX_FILE_BYTES, READ_SCHEMA, READER_REASONS
from curation.readers.shard import IMAGE_EXTENSIONS, InputShard, ShardKind

__all__ = [
    "FILES_PER_SHARD",
    "IMAGE_COLUMNS",
    "IMAGE_EXTENSIONS",
    "MAX_FILE_BYTES",
    "READER_REASONS",
    "READ_SCHEMA",
    "InputShard",
    "ShardKind",
    "detect_image_column",
    "discover_input_shards",
    "read_dataset",
    "read_input_shard",
]
