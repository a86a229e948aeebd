import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.schemas import SHARD_BASE_FIELDS, SHARD_INDEX_SCHEMA, candidate_schema


def candidate_rows(clip_dim: int) -> list[dict]:
    clip = np.random.default_rng(0).normal(size=clip_dim).astype(np.float32)
    clip /= np.linalg.norm(clip)
    kept = {
        "key": "a" * 20,
        "source": "file:///raw/00000.tar",
        "member": "000000001.jpg",
        "width": 768,
        "height": 1024,
        "phash": 2**64 - 1,  # all 64 bits survive: phash is unsigned
        "persons": [{"box": [1.0, 2.0, 400.5, 900.0], "conf": 0.9}, {"box": [0.0, 0.0, 10.0, 10.0], "conf": 0.2}],
        "max_person_short_side": 399.5,
        "head_pose": {"yaw_class": "frontal", "face_keypoints_visible": 5},
        "clip": clip.astype(np.float16).tolist(),
        "aesthetic": 5.5,
        "realism": 0.8,
        "text_overlay": 0.1,
        "would_reject": ["low_aesthetic"],
        "reject_reason": None,
    }
    rejected = {"key": "b" * 20, "source": "file:///raw/bad.jpg", "reject_reason": "truncated"}
    return [kept, rejected]


def test_candidate_rows_round_trip_through_parquet(tmp_path):
    schema = candidate_schema(64)
    table = pa.Table.from_pylist(candidate_rows(64), schema=schema)
    pq.write_table(table, tmp_path / "part-00000.parquet")
    back = pq.read_table(tmp_path / "part-00000.parquet")
    assert back.schema.equals(schema)
    assert back.to_pylist() == table.to_pylist()
    assert back["phash"][0].as_py() == 2**64 - 1
    assert back["persons"][0].as_py()[0]["box"] == [1.0, 2.0, 400.5, 900.0]
    assert back.column("clip").type == pa.list_(pa.float16(), 64)
    assert back["reject_reason"].to_pylist() == [None, "truncated"]


def test_candidate_schema_checks_width():
    assert candidate_schema(768).field("clip").type.list_size == 768
    with pytest.raises(ValueError, match="clip_dim"):
        candidate_schema(0)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, ValueError)):
        pa.Table.from_pylist(candidate_rows(64), schema=candidate_schema(32))  # wrong embedding width


def test_shard_index_schema_starts_with_base_fields():
    assert SHARD_INDEX_SCHEMA.names[: len(SHARD_BASE_FIELDS)] == ["key", "tar_offset", "tar_bytes"]
    assert SHARD_INDEX_SCHEMA.field("key").nullable is False
