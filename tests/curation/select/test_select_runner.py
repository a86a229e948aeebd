"""The select phase end to end on planted candidates: every row accounted for, resumable step by step."""

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

pytestmark = pytest.mark.usefixtures("ray_local")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def mark_scored(part) -> None:
    """The completion marker the score phase writes next to each part; select checks the part's bytes against it."""
    marker = {"rows": pq.read_metadata(part).num_rows, "files": {part.name: record_file(part)}}
    part.with_name(part.name.replace(".parquet", ".done.json")).write_text(json.dumps(marker))


def write_candidates(run, n_unique: int = 120, seed: int = 0) -> dict[str, set[str]]:
    """n_unique distinct images, plus planted phash near-copies and embedding near-copies, plus rejected rows.
    Returns the keys each dedup method must remove."""
    rng = np.random.default_rng(seed)
    rows, planted = [], {"dup_phash": set(), "dup_embedding": set()}
    base = unit(rng.normal(size=(n_unique, D)))
    hashes = rng.integers(0, 2**63, size=n_unique, dtype=np.uint64)

    def add(key, phash, emb, aesthetic, reason=None):
        rows.append(
            {"key": key, "source": f"/x/{key}.jpg", "member": None, "width": 640, "height": 480,
             "phash": int(phash), "persons": [], "max_person_short_side": 400.0,
             "head_pose": {"yaw_class": "frontal", "face_keypoints_visible": 5},
             "clip": emb.astype(np.float16).tolist(), "aesthetic": aesthetic, "realism": 0.9, "text_overlay": 0.1,
             "would_reject": [], "reject_reason": reason}
        )  # fmt: skip

    for i in range(n_unique):
        add(f"u{i:04d}", hashes[i], base[i], 6.0)
    for i in range(0, 20):  # a re-encode: phash 2 bits off, same picture; lower aesthetic so the original stays
        add(f"p{i:04d}", hashes[i] ^ np.uint64(0b101), base[i], 5.0)
        planted["dup_phash"].add(f"p{i:04d}")
    for i in range(20, 35):  # a crop: phash far away, embedding at cosine ~0.99
        emb = unit(base[i] + 0.1 * unit(rng.normal(size=D)) * 1.0)
        add(f"e{i:04d}", rng.integers(0, 2**63, dtype=np.uint64), emb, 5.0)
        planted["dup_embedding"].add(f"e{i:04d}")
    for i in range(5):
        add(f"r{i:04d}", hashes[i], base[i], 9.0, reason="too_small")  # rejected upstream: never selected
    (run / "candidates").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=candidate_schema(D)), run / "candidates" / "part-00000.parquet")
    mark_scored(run / "candidates" / "part-00000.parquet")
    (run / "stats.json").write_text("{}")
    return planted


def config(fraction: float = 0.5) -> SelectConfig:
    return SelectConfig(
        semdedup=SemDedupConfig(num_clusters=4),
        clusters=HierarchyConfig(clusters=[12, 4, 2]),
        sampling=SamplingConfig(fraction=fraction),
    )


@pytest.fixture
def run(tmp_path):
    return tmp_path / "run"


def test_every_kept_candidate_is_selected_or_removed_with_a_reason(run):
    planted = write_candidates(run)
    result = run_select(run, config(), seed=0)
    selection = pq.read_table(run / "selection.parquet")
    rejected = pq.read_table(run / "select" / "rejected.parquet").to_pylist()
    stats = json.loads((run / "select_stats.json").read_text())
    assert stats == result.stats
    assert stats["rows_in"] == 120 + 20 + 15 == selection.num_rows + len(rejected)
    keys = set(selection["key"].to_pylist()) | {r["key"] for r in rejected}
    assert len(keys) == stats["rows_in"] and not any(k.startswith("r") for k in keys)
    by_reason = {reason: {r["key"] for r in rejected if r["reject_reason"] == reason} for reason in planted}
    assert by_reason == planted  # exactly the planted copies go, each to its own method
    for r in rejected:
        if r["dup_of"] is not None:
            assert r["dup_of"] == "u" + r["key"][1:]  # the original, which has the higher aesthetic
    for step in stats["steps"].values():
        assert step["in"] == step["kept"] + sum(step["rejected"].values())
    assert stats["steps"]["sampling"]["kept"] == stats["kept"] == selection.num_rows == round(0.5 * 120)
    assert selection["cluster_ids"].type.list_size == 3
    assert [lvl["stats"]["count"] for lvl in stats["clusters"]["after"]] == [12, 4, 2]
    assert sum(stats["clusters"]["after"][0]["sizes"]) == selection.num_rows


def test_a_rerun_resumes_at_the_first_missing_or_outdated_step(run):
    write_candidates(run)
    first = run_select(run, config(), seed=0)
    assert first.steps_done_now == ["phash_dedup", "semdedup", "clustering", "sampling"]
    selection = pq.read_table(run / "selection.parquet")
    assert run_select(run, config(), seed=0).steps_done_now == []
    (run / "select" / "semdedup" / "_done.json").unlink()
    assert run_select(run, config(), seed=0).steps_done_now == ["semdedup"]
    assert pq.read_table(run / "selection.parquet").equals(selection)
    assert run_select(run, config(0.25), seed=0).steps_done_now == ["sampling"]
    assert pq.read_table(run / "selection.parquet").num_rows == 30
    assert run_select(run, config(0.25), seed=1).steps_done_now == ["phash_dedup", "semdedup", "clustering", "sampling"]


def test_same_seed_same_selection(run, tmp_path):
    write_candidates(run)
    other = tmp_path / "other"
    write_candidates(other)
    run_select(run, config(), seed=3)
    run_select(other, config(), seed=3)
    assert pq.read_table(run / "selection.parquet").equals(pq.read_table(other / "selection.parquet"))


def test_nothing_kept_upstream_gives_an_empty_selection(run):
    write_candidates(run)
    path = run / "candidates" / "part-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("reject_reason"), "reject_reason",
                                    pa.array(["no_person"] * table.num_rows)), path)  # fmt: skip
    mark_scored(path)
    result = run_select(run, config(), seed=0)
    assert result.stats["rows_in"] == result.stats["kept"] == 0
    assert pq.read_table(run / "selection.parquet").num_rows == 0


def test_semdedup_audit_counts_its_decisions_and_removes_nothing(run):
    planted = write_candidates(run)
    cfg = config(fraction=1.0)
    cfg = SelectConfig(semdedup=SemDedupConfig(num_clusters=4, mode="audit"), clusters=cfg.clusters)
    stats = run_select(run, cfg, seed=0).stats
    step = stats["steps"]["semdedup"]
    assert step["rejected"] == {} and step["kept"] == step["in"]
    assert step["would_reject"] == {"dup_embedding": len(planted["dup_embedding"])}
    assert stats["kept"] == 120 + 15
