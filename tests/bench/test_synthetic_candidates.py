"""bench/synthetic_candidates.py: a scored run the select phase accepts, with exactly the duplicates it says it
planted, checked by brute force against the rows on disk."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.file_digest import record_file
from common.schemas import candidate_schema
from tests.bench.scripts import synthetic

ROWS, DIM, PER_PART = 2000, 16, 500


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("synthetic")
    record = synthetic.write_synthetic_run(run_dir, ROWS, DIM, rows_per_part=PER_PART, progress=False)
    return run_dir, record


def all_rows(run_dir) -> pa.Table:
    parts = sorted((run_dir / "candidates").glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])


def planted(run_dir) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted((run_dir / "planted").glob("*.parquet"))])


def test_parts_markers_and_row_counts(run):
    run_dir, record = run
    parts = sorted(p.name for p in (run_dir / "candidates").iterdir())
    assert parts == [f"part-{i:05d}.{ext}" for i in range(4) for ext in ("done.json", "parquet")]
    assert record["parts"] == 4
    table = all_rows(run_dir)
    assert table.schema == candidate_schema(DIM)
    assert table.num_rows == ROWS
    assert len(set(table["key"].to_pylist())) == ROWS
    reasons = table["reject_reason"].to_pylist()
    assert {r for r in reasons if r is not None} == {"too_small"}
    rejected = sum(r is not None for r in reasons)
    assert rejected == record["planted"]["rejected"] > 0
    assert record["kept"] == ROWS - rejected
    stats = json.loads((run_dir / "stats.json").read_text())
    assert (stats["shards"], stats["rows_in"], stats["kept"]) == (4, ROWS, ROWS - rejected)
    for i in range(4):
        part = run_dir / "candidates" / f"part-{i:05d}.parquet"
        marker = json.loads(part.with_name(f"part-{i:05d}.done.json").read_text())
        assert marker["files"] == {part.name: record_file(part)}
        assert marker["rows"] == pq.read_metadata(part).num_rows == PER_PART
        keys = pq.read_table(part, columns=["key"])["key"].to_pylist()
        assert keys == sorted(keys)  # as the score sink writes them
    assert json.loads((run_dir / "synthetic.json").read_text()) == record
    assert record["finished"] is True


def kept_as_select_reads_them(run_dir) -> tuple[int, np.ndarray]:
    """(rows, float16 CLIP matrix) of the kept candidates, read by the select phase's own loader, which checks each
    part against its marker's SHA-256."""
    from curation.select import candidates

    if hasattr(candidates, "load_kept_candidates"):
        meta, clip = candidates.load_kept_candidates(run_dir)
        return meta.num_rows, clip
    if not hasattr(candidates, "read_verified_part"):
        pytest.skip("the select phase's candidate loader moved; markers are checked with common.file_digest above")
    parts = [candidates.read_verified_part(run_dir / "candidates", i) for i in candidates.shard_ids(run_dir)]
    assert not [p for p in parts if isinstance(p, str)]  # a str says what is wrong with the part
    table = pa.concat_tables(parts)
    return table.num_rows, candidates.clip_matrix(table["clip"])


def test_select_accepts_the_parts_and_reads_the_kept_rows(run):
    run_dir, record = run
    rows, clip = kept_as_select_reads_them(run_dir)
    assert rows == record["kept"] and clip.shape == (record["kept"], DIM)
    assert clip.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(clip.astype(np.float32), axis=1), 1.0, atol=2e-3)
    assert sorted(p.name for p in (run_dir / "candidates").glob("*.done.json")) == [
        f"part-{i:05d}.done.json" for i in range(4)
    ]  # no marker was found wanting and removed


def test_planted_copies_are_in_the_data(run):
    run_dir, record = run
    table, copies = all_rows(run_dir), planted(run_dir)
    kinds = copies["kind"].to_pylist()
    assert {k: kinds.count(k) for k in synthetic.SHARES} == record["planted"]
    assert all(n > 0 for n in record["planted"].values())
    row = {k: i for i, k in enumerate(table["key"].to_pylist())}
    phash = table["phash"].to_numpy()
    emb = np.stack(table["clip"].to_numpy(zero_copy_only=False)).astype(np.float32)
    kept = table["reject_reason"].is_null().to_numpy(zero_copy_only=False)
    copy_keys = set(copies["key"].to_pylist())
    for key, kind, original in zip(copies["key"].to_pylist(), kinds, copies["original"].to_pylist(), strict=True):
        c, o = row[key], row[original]
        assert original not in copy_keys and kept[o]  # originals are kept fresh rows
        bits = int(np.bitwise_count(phash[c] ^ phash[o]))
        cosine = float(emb[c] @ emb[o])
        assert cosine >= 0.97, (kind, cosine)
        if kind in ("phash_exact", "rejected"):
            assert bits == 0
        elif kind == "phash_near":
            assert 1 <= bits <= 4
        else:
            assert bits > 4 and cosine <= 0.996
        assert kept[c] == (kind != "rejected")

    # Exact duplicates: each planted exact copy adds one row and no distinct value.
    assert kept.sum() - len(np.unique(phash[kept])) == record["planted"]["phash_exact"]
    assert ROWS - len(np.unique(phash)) == record["planted"]["phash_exact"] + record["planted"]["rejected"]
    # Near duplicates: every pair of distinct values within 1-4 bits involves a planted near copy.
    distinct = np.unique(phash[kept])
    left, right = np.nonzero(np.triu(np.bitwise_count(distinct[:, None] ^ distinct[None, :]) <= 4, k=1))
    near_rows = [row[k] for k, kind in zip(copies["key"].to_pylist(), kinds, strict=True) if kind == "phash_near"]
    near_values = set(phash[near_rows])
    assert len(near_values) == record["planted"]["phash_near"]  # no two near copies share a value
    assert len(left) >= len(near_values)
    assert all(distinct[a] in near_values or distinct[b] in near_values for a, b in zip(left, right, strict=True))
    # Embedding pairs at cosine >= 0.97 only ever join an original and its copies, never two unrelated rows.
    original_of = dict(zip(copies["key"].to_pylist(), copies["original"].to_pylist(), strict=True))
    family = np.array([original_of.get(key, key) for key in row])
    cos = emb @ emb.T
    np.fill_diagonal(cos, -1)
    a, b = np.nonzero(cos >= 0.97)
    assert np.array_equal(family[a], family[b]) and len(a) // 2 >= len(copies)


def test_keep_rule_has_work(run):
    """Copies beat their originals on aesthetic about half the time, and ties reach the later keep_by columns."""
    run_dir, _ = run
    table, copies = all_rows(run_dir), planted(run_dir)
    aesthetic = dict(zip(table["key"].to_pylist(), table["aesthetic"].to_pylist(), strict=True))
    pairs = zip(copies["key"].to_pylist(), copies["original"].to_pylist(), strict=True)
    better = [aesthetic[c] > aesthetic[o] for c, o in pairs]
    assert 0.2 < np.mean(better) < 0.9
    kept = table.filter(table["reject_reason"].is_null())
    ties = kept.group_by(["aesthetic", "max_person_short_side"]).aggregate([("key", "count")])
    assert len(np.unique(kept["aesthetic"].to_numpy())) < kept.num_rows // 10  # ties on aesthetic everywhere
    assert (ties["key_count"].to_numpy() >= 2).any()  # and some on both, left to the key


def test_same_seed_same_bytes(tmp_path):
    records = [
        synthetic.write_synthetic_run(tmp_path / name, 700, 8, rows_per_part=300, seed=seed, progress=False)
        for name, seed in (("a", 3), ("b", 3), ("c", 4))
    ]
    digests = [
        [json.loads(p.read_text())["files"] for p in sorted((tmp_path / name / "candidates").glob("*.done.json"))]
        for name in "abc"
    ]
    assert len(digests[0]) == 3 and digests[0] == digests[1] != digests[2]
    assert records[0]["planted"] == records[1]["planted"]
    assert [pq.read_metadata(p).num_rows for p in sorted((tmp_path / "a" / "candidates").glob("*.parquet"))] == [
        300,
        300,
        100,
    ]
