"""Parquet inputs: image bytes from a binary column or an HF {bytes, path} struct, read back byte for byte."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.keys import sample_key
from common.reasons import RejectReason
from curation.readers import (
    READ_SCHEMA,
    InputShard,
    detect_image_column,
    discover_input_shards,
    read_input_shard,
)
from curation.sample_corpus import SampleCorpus, SampleCorpusConfig, build_sample_corpus

HF_IMAGE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SampleCorpus:
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(samples_per_shard=16))


@pytest.fixture(scope="module")
def corpus_images(corpus) -> list[bytes]:
    return [(corpus.images_dir / entry.path).read_bytes() for entry in corpus.entries]


def read_one(path: Path, **kwargs) -> pa.Table:
    (shard,) = discover_input_shards([str(path)], **kwargs)
    table = read_input_shard(shard)
    assert table.schema.equals(READ_SCHEMA)
    assert set(table["shard_rows"].to_pylist()) <= {table.num_rows}
    return table


def test_a_binary_column_reads_back_the_same_bytes(corpus, corpus_images, tmp_path):
    path = tmp_path / "images.parquet"
    names = [e.path for e in corpus.entries]
    pq.write_table(pa.table({"url": names, "jpg": corpus_images}), path, row_group_size=10)
    table = read_one(path)
    assert table["image"].to_pylist() == corpus_images
    assert table["member"].to_pylist() == [str(i) for i in range(len(names))]
    assert table["key"].to_pylist() == [sample_key("images.parquet", str(i)) for i in range(len(names))]
    assert table["reject_reason"].null_count == table.num_rows


def test_an_hf_struct_column_and_a_named_column(corpus_images, tmp_path):
    cells = [{"bytes": data, "path": f"{i}.jpg"} for i, data in enumerate(corpus_images[:5])]
    cells[2] = {"bytes": None, "path": "elsewhere.jpg"}  # HF keeps only a path when the bytes live outside
    hf = tmp_path / "hf.parquet"
    pq.write_table(pa.table({"picture": pa.array(cells, HF_IMAGE), "label": list(range(5))}), hf)
    table = read_one(hf)
    assert table["image"].to_pylist() == [*corpus_images[:2], None, *corpus_images[3:5]]
    assert table["reject_reason"].to_pylist() == [None, None, RejectReason.NULL_IMAGE, None, None]

    named = tmp_path / "named.parquet"
    pq.write_table(pa.table({"thumb": corpus_images[:2], "photo": corpus_images[2:4]}), named)
    assert read_one(named, image_column="photo")["image"].to_pylist() == corpus_images[2:4]
    with pytest.raises(ValueError, match="image_column"):
        discover_input_shards([str(named)])  # two candidates, none of the known names: it must be named


def test_detect_image_column():
    binary = pa.field("x", pa.binary())
    assert detect_image_column(pa.schema([pa.field("image", pa.binary()), pa.field("jpg", pa.large_binary())])) == "jpg"
    assert detect_image_column(pa.schema([pa.field("image", HF_IMAGE)])) == "image"
    assert detect_image_column(pa.schema([pa.field("jpg", pa.string())])) is None  # text is not image bytes
    assert detect_image_column(pa.schema([binary])) is None
    assert detect_image_column(pa.schema([binary]), "x") == "x"
    assert detect_image_column(pa.schema([binary]), "y") is None


def test_size_cap_and_a_damaged_row_group(corpus_images, tmp_path):
    cells = [bytes([i]) * 3000 for i in range(12)]
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.table({"image": cells}), path, row_group_size=4, compression="none", use_dictionary=False)
    (shard,) = discover_input_shards([str(path)])
    capped = read_input_shard(shard, max_file_bytes=2999)
    assert capped["reject_reason"].to_pylist() == [RejectReason.FILE_TOO_LARGE] * 12

    raw = bytearray(path.read_bytes())
    page = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
    raw[page : page + 16] = b"\xff" * 16  # the page header of rows 4-7
    path.write_bytes(bytes(raw))
    table = read_input_shard(shard)
    assert table["member"].to_pylist() == [str(i) for i in range(12)]
    assert table["reject_reason"].to_pylist() == [None] * 4 + [RejectReason.ARCHIVE_DAMAGED] * 4 + [None] * 4
    assert table["image"].to_pylist() == [*cells[:4], None, None, None, None, *cells[8:]]


def test_an_unreadable_parquet_stays_an_input_and_is_recorded(corpus_images, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"jpg": corpus_images[:3]}), folder / "a.parquet")
    (folder / "b.parquet").write_bytes((folder / "a.parquet").read_bytes()[:-30])  # footer cut off
    pq.write_table(pa.table({"caption": ["no images here"]}), folder / "captions.parquet")
    shards = discover_input_shards([str(folder)])
    assert [s.paths for s in shards] == [("a.parquet",), ("b.parquet",)]
    damaged = read_input_shard(shards[1]).to_pylist()
    assert [(r["member"], r["reject_reason"], r["shard_rows"]) for r in damaged] == [
        (None, RejectReason.ARCHIVE_DAMAGED, 1)
    ]
    missing = read_input_shard(InputShard(0, "parquet", str(folder), ("gone.parquet",), "jpg"))
    assert missing["reject_reason"].to_pylist() == [RejectReason.READ_ERROR]
    with pytest.raises(ValueError, match="no image column"):
        discover_input_shards([str(folder / "captions.parquet")])
