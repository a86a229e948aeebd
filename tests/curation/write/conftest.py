"""A selection.parquet over the sample corpus's decodable images, as the select phase would leave it."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.image_decode import DecodeConfig, decode_image
from common.schemas import candidate_schema
from curation.readers import discover_input_shards, read_input_shard
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.select.candidates import META_COLUMNS

LEVELS = 3


def selection_table(inputs: list[str], copies: int = 1) -> pa.Table:
    """One row per decodable image (`copies` rows each, under distinct keys), with made-up scores and clusters."""
    schema = candidate_schema(8)
    fields = [schema.field(name) for name in META_COLUMNS] + [
        pa.field("cluster_ids", pa.list_(pa.int32(), LEVELS)),
        pa.field("leaf_distance", pa.float32()),
    ]
    rows = []
    for shard in discover_input_shards(inputs, files_per_shard=16):
        t = read_input_shard(shard)
        for row in t.to_pylist():
            decoded = decode_image(row["image"], DecodeConfig()) if row["image"] else None
            if decoded is None or decoded.image is None:
                continue
            for copy in range(copies):
                i = len(rows)
                rows.append(
                    {
                        "key": row["key"] if copy == 0 else f"{row['key']}-{copy}",
                        "source": row["source"],
                        "member": row["member"],
                        "member_offset": row["member_offset"],  # null but for tar members
                        "member_bytes": row["member_bytes"],
                        "width": decoded.width,
                        "height": decoded.height,
                        "phash": i,
                        "persons": [{"box": [1.0, 2.0, 300.5, 400.25], "conf": 0.875}],
                        "max_person_short_side": 298.5,
                        "head_pose": {"yaw_class": "frontal", "face_keypoints_visible": 5},
                        "aesthetic": 5.5 + i / 100,
                        "realism": 0.75,
                        "text_overlay": 0.125,
                        "would_reject": [],
                        "cluster_ids": [i % 5, i % 3, i % 2],
                        "leaf_distance": 0.5,
                    }
                )
    return pa.Table.from_pylist(rows, schema=pa.schema(fields)).sort_by("key")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig())


@pytest.fixture
def run_dir(tmp_path, corpus):
    """A run directory holding only selection.parquet, over both the folder and the tar copy of the corpus."""
    out = tmp_path / "run"
    out.mkdir()
    pq.write_table(selection_table([str(corpus.images_dir)]), out / "selection.parquet")
    return out


@pytest.fixture
def make_selection():
    """selection_table, for tests that need a bigger or different selection."""
    return selection_table
