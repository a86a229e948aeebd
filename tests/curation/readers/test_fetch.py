"""Reading scored rows' bytes back by (source, member): equal to what the readers read, from every input kind."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.readers import discover_input_shards, read_input_shard
from curation.readers.fetch import fetch_images
from curation.sample_corpus import SampleCorpus, SampleCorpusConfig, build_sample_corpus

HF_IMAGE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SampleCorpus:
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(samples_per_shard=16))


def read_rows(inputs: list[str]) -> dict[tuple[str, str | None], bytes]:
    rows = {}
    for shard in discover_input_shards(inputs, files_per_shard=7):
        t = read_input_shard(shard)
        columns = (t["source"].to_pylist(), t["member"].to_pylist(), t["image"].to_pylist())
        for source, member, image in zip(*columns, strict=True):
            if image is not None:
                rows[(source, member)] = image
    return rows


@pytest.mark.parametrize("kind", ["folder", "tars", "parquet", "hf_parquet"])
def test_fetch_returns_the_bytes_the_reader_read(corpus, tmp_path, kind):
    if kind == "folder":
        inputs = [str(corpus.images_dir)]
    elif kind == "tars":
        inputs = [str(corpus.tars_dir)]
    else:
        data = [(corpus.images_dir / e.path).read_bytes() for e in corpus.entries]
        column = pa.array([{"bytes": d, "path": None} for d in data], HF_IMAGE) if kind == "hf_parquet" else data
        path = tmp_path / "images.parquet"
        pq.write_table(pa.table({"image": column}), path, row_group_size=10)
        inputs = [str(path)]
    expected = read_rows(inputs)
    assert len(expected) >= 40
    picked = dict(list(expected.items())[::3])  # a subset, spread over several row groups / members / files
    assert fetch_images(picked) == picked


def test_gone_and_unknown_locations_are_left_out(corpus, tmp_path):
    expected = read_rows([str(corpus.tars_dir)])
    (source, member), data = next(iter(expected.items()))
    asked = [(source, member), (source, "no-such-member.jpg"), (str(tmp_path / "gone.jpg"), None)]
    assert fetch_images(asked) == {(source, member): data}


def test_the_size_cap_applies(corpus):
    expected = read_rows([str(corpus.images_dir)])
    small = min(len(d) for d in expected.values())
    got = fetch_images(expected, max_file_bytes=small)
    assert got and all(len(d) <= small for d in got.values())
    assert len(got) == sum(len(d) <= small for d in expected.values())
