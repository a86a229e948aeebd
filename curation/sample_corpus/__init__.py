"""A small raw "web" corpus built from photos that ship with installed packages: originals, near-duplicates,
odd-but-valid formats and malformed files, each with the outcome the decoder is expected to give."""

from curation.sample_corpus.build import (
    IMAGES_DIR,
    MANIFEST_NAME,
    TARS_DIR,
    CorpusEntry,
    SampleCorpus,
    SampleCorpusConfig,
    build_sample_corpus,
    corpus_files,
)
from curation.sample_corpus.files import NEAR_DUPLICATE, ORIGINAL, CorpusFile
from curation.sample_corpus.schemas import MANIFEST_SCHEMA, RAW_INDEX_SCHEMA
from curation.sample_corpus.sources import PHOTOS, Original, load_originals

__all__ = [
    "IMAGES_DIR",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "NEAR_DUPLICATE",
    "ORIGINAL",
    "PHOTOS",
    "RAW_INDEX_SCHEMA",
    "TARS_DIR",
    "CorpusEntry",
    "CorpusFile",
    "Original",
    "SampleCorpus",
    "SampleCorpusConfig",
    "build_sample_corpus",
    "corpus_files",
    "load_originals",
]
