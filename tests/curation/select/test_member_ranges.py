"""The byte ranges of tar members travel from the candidate parts into selection.parquet; candidate parts scored
before ranges were recorded still select, with null ranges (their rows are then read back by streaming)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.file_digest import record_file
from common.schemas import candidate_schema
from curation.select.balanced_sampling import SamplingConfig
from curation.select.config import SelectConfig
from curation.select.hierarchical_kmeans import HierarchyConfig
from curation.select.runner import run_select
from curation.select.semdedup import SemDedupConfig

D = 16
RANGES = ["member_offset", "member_bytes"]

pytestmark = pytest.mark.usefixtures("ray_local")


def candidates(n: int = 80) -> pa.Table:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, D))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rows = [
        {"key": f"k{i:04d}", "source": f"/x/{i % 4}.tar", "member": f"{i:09d}.jpg",
         "member_offset": 512 + 2048 * i if i % 3 else None, "member_bytes": 1000 + i if i % 3 else None,
         "width": 640, "height": 480, "phash": int(h), "persons": [], "max_person_short_side": 400.0,
         "head_pose": {"yaw_class": "frontal", "face_keypoints_visible": 5}, "clip": e.astype(np.float16).tolist(),
         "aesthetic": 6.0, "realism": 0.9, "text_overlay": 0.1, "would_reject": [], "reject_reason": None}
        for i, (h, e) in enumerate(zip(rng.integers(0, 2**63, size=n, dtype=np.uint64), emb, strict=True))
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=candidate_schema(D))


def scored_run(tmp_path, table: pa.Table):
    run = tmp_path / "run"
    (run / "candidates").mkdir(parents=True)
    part = run / "candidates" / "part-00000.parquet"
    pq.write_table(table, part)
    marker = {"rows": table.num_rows, "files": {part.name: record_file(part)}}
    (run / "candidates" / "part-00000.done.json").write_text(json.dumps(marker))
    (run / "stats.json").write_text("{}")
    return run


def config() -> SelectConfig:
    return SelectConfig(
        semdedup=SemDedupConfig(num_clusters=4),
        clusters=HierarchyConfig(clusters=[8, 4, 2]),
        sampling=SamplingConfig(fraction=0.5),
    )


def test_ranges_reach_the_selection(tmp_path):
    table = candidates()
    run_select(scored_run(tmp_path, table), config(), seed=0)
    selection = pq.read_table(tmp_path / "run" / "selection.parquet")
    assert selection.num_rows > 10
    assert all(selection.schema.field(name).type == pa.int64() for name in RANGES)
    expected = {r["key"]: [r[name] for name in RANGES] for r in table.to_pylist()}
    for r in selection.to_pylist():
        assert [r[name] for name in RANGES] == expected[r["key"]]
    assert 0 < selection["member_offset"].null_count < selection.num_rows  # both kinds of row were selected


def test_parts_scored_before_ranges_select_with_null_ranges(tmp_path):
    old = candidates().drop_columns(RANGES)
    run_select(scored_run(tmp_path, old), config(), seed=0)
    selection = pq.read_table(tmp_path / "run" / "selection.parquet")
    assert selection.num_rows > 10
    for name in RANGES:
        assert selection.schema.field(name).type == pa.int64()
        assert selection[name].null_count == selection.num_rows
