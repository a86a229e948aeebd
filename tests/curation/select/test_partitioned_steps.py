"""The partitioned (Ray) select steps against the in-memory reference implementations and brute force, on candidates
cut into several parts and with a memory budget small enough to force many buckets, partitions and cluster groups."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from common.schemas import candidate_schema
from curation.select.alive_rows import AliveRows, lloyd_fit
from curation.select.balanced_sampling import SamplingConfig, balanced_sample
from curation.select.candidates import clip_matrix
from curation.select.components import preference_rank
from curation.select.config import SelectConfig
from curation.select.duplicate_groups import load_edges
from curation.select.hierarchical_kmeans import HierarchyConfig, hierarchical_kmeans
from curation.select.kmeans import fit_centroids
from curation.select.phash_dedup import PhashDedupConfig, phash_dedup
from curation.select.phash_partitioned import phash_dedup_partitioned
from curation.select.runner import run_select
from curation.select.semdedup import SemDedupConfig, semdedup
from curation.select.semdedup_partitioned import cluster_groups, semdedup_partitioned
from curation.select.step_files import read_removed, start_step
from curation.select.store import build_store
from tests.curation.select.test_select_runner import mark_scored

pytestmark = pytest.mark.usefixtures("ray_local")
D = 16


def planted_rows(n: int, seed: int) -> pa.Table:
    """n rows: a quarter exact phash copies, a quarter 1-4 bits off another row, some null hashes; embeddings in
    tight near-copy groups around a few topics."""
    rng = np.random.default_rng(seed)
    phash = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    src = rng.integers(0, n // 2, size=n)
    exact = rng.random(n) < 0.25
    phash[exact] = phash[src[exact]]
    near = (rng.random(n) < 0.25) & ~exact
    for i in np.flatnonzero(near):
        flips = rng.choice(64, rng.integers(1, 5), replace=False)
        phash[i] = phash[src[i]] ^ np.uint64(sum(1 << int(b) for b in flips))
    topics = rng.normal(size=(6, D))
    base = topics[rng.integers(0, 6, n)] + 0.6 * rng.normal(size=(n, D))
    copy = rng.random(n) < 0.2
    base[copy] = base[src[copy]] + 0.02 * rng.normal(size=(int(copy.sum()), D))
    emb = base / np.linalg.norm(base, axis=1, keepdims=True)
    valid = rng.random(n) > 0.02
    return pa.table(
        {
            "key": [f"k{i:06d}" for i in rng.permutation(n)],
            "source": ["/x"] * n,
            "member": pa.nulls(n, pa.string()),
            "member_offset": pa.nulls(n, pa.int64()),
            "member_bytes": pa.nulls(n, pa.int64()),
            "width": pa.array([640] * n, pa.int32()),
            "height": pa.array([480] * n, pa.int32()),
            "phash": pa.array(phash, pa.uint64(), mask=~valid),
            "persons": pa.array([[]] * n, candidate_schema(D).field("persons").type),
            "max_person_short_side": pa.array(rng.uniform(100, 900, n).astype(np.float32)),
            "head_pose": pa.nulls(n, candidate_schema(D).field("head_pose").type),
            "clip": pa.FixedSizeListArray.from_arrays(pa.array(emb.astype(np.float16).reshape(-1)), D),
            "aesthetic": pa.array(rng.integers(0, 4, n).astype(np.float32)),  # ties: the key decides
            "nsfw": pa.nulls(n, pa.float32()),
            "realism": pa.nulls(n, pa.float32()),
            "text_overlay": pa.nulls(n, pa.float32()),
            "would_reject": pa.array([[]] * n, pa.list_(pa.string())),
            "reject_reason": pa.nulls(n, pa.string()),
        },
        schema=candidate_schema(D),
    )


def scored_run(run, table: pa.Table, parts: int):
    (run / "candidates").mkdir(parents=True)
    step = -(-table.num_rows // parts)
    for i in range(parts):
        path = run / "candidates" / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(i * step, step), path)
        mark_scored(path)
    (run / "stats.json").write_text(json.dumps({"shards": parts}))
    return build_store(run, run / "candidates")


def removed_by_key(store, folder) -> dict[str, str]:
    out = {}
    for shard_id in store.shard_ids:
        keys = store.meta(int(shard_id), ["key"])["key"].to_pylist()
        for row in read_removed(folder, int(shard_id)).to_pylist():
            out[keys[row["row"]]] = row["dup_of"]
    return out


def test_partitioned_phash_dedup_equals_the_in_memory_one(tmp_path):
    table = planted_rows(3000, seed=0)
    store = scored_run(tmp_path / "run", table, parts=7)
    cfg = PhashDedupConfig()
    folder = tmp_path / "run" / "select" / "phash_dedup"
    start_step(folder)
    nodes: set[str] = set()
    stats, removed = phash_dedup_partitioned(store, cfg, folder, budget_bytes=50_000, nodes=nodes)
    assert stats["buckets"] >= 8 and stats["partitions_per_table"] >= 4 and nodes  # the budget forced partitions

    reference_table = table.sort_by("key")
    reference = phash_dedup(reference_table, cfg, progress=False)
    keys = reference_table["key"].to_pylist()
    expected = {keys[i]: keys[j] for i, j in enumerate(reference.dup_of) if j >= 0}
    assert removed_by_key(store, folder) == expected and len(expected) > 600
    assert sum(removed.values()) == reference.removed
    assert (stats["exact_groups"], stats["near_pairs"], stats["components"]) == (
        reference.exact_groups,
        reference.near_pairs,
        reference.components,
    )


def test_partitioned_semdedup_finds_every_brute_force_pair(tmp_path):
    table = planted_rows(1500, seed=1)
    store = scored_run(tmp_path / "run", table, parts=5)
    folder = tmp_path / "run" / "select" / "semdedup"
    start_step(folder)
    rows = AliveRows.after(store, [], [])
    cfg = SemDedupConfig(num_clusters=12)
    nodes: set[str] = set()
    stats, removed = semdedup_partitioned(
        rows, cfg, folder, seed=0, keep_by=["aesthetic"], budget_bytes=40_000, nodes=nodes
    )
    assert stats["groups"] > 3  # the budget cut the clusters into several groups

    emb = np.concatenate([store.embeddings(int(s)).astype(np.float32) for s in store.shard_ids])
    sim = emb @ emb.T
    truth = set(zip(*np.nonzero(np.triu(sim >= cfg.min_cosine, 1)), strict=True))
    left, right = load_edges(sorted((folder / "tmp").glob("pairs-*.npy")))
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    assert found <= truth  # precision 1.0
    assert len(found & truth) >= 0.99 * len(truth) and len(truth) > 100
    assert sum(removed.values()) == stats["rejected"]["dup_embedding"]


def test_cluster_groups_respect_the_budget_except_for_one_big_cluster():
    assert cluster_groups(np.array([3, 3, 3, 10, 1, 1]), 6) == [(0, 2), (2, 3), (3, 4), (4, 6)]
    assert cluster_groups(np.array([], dtype=np.int64), 6) == []


@pytest.mark.parametrize("spherical", [True, False])
def test_distributed_lloyd_steps_equal_plain_lloyd(tmp_path, spherical):
    store = scored_run(tmp_path / "run", planted_rows(900, seed=2), parts=4)
    rows = AliveRows.after(store, [], [])
    x = np.concatenate([store.embeddings(int(s)).astype(np.float32) for s in store.shard_ids])
    start = x[np.random.default_rng(0).choice(len(x), 10, replace=False)]
    expected = start.copy()
    for _ in range(3):  # the textbook loop, every row in memory
        if spherical:
            labels = np.argmax(x @ expected.T, axis=1)
        else:
            labels = np.argmin(((x[:, None, :] - expected[None]) ** 2).sum(-1), axis=1)
        for c in range(len(expected)):
            if (labels == c).any():
                expected[c] = x[labels == c].mean(0)
        if spherical:
            expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    found = lloyd_fit(rows, start, iterations=3, spherical=spherical)
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert rows.nodes


def plain_spherical_lloyd(x: np.ndarray, centroids: np.ndarray, iterations: int) -> np.ndarray:
    centroids = centroids.copy()
    for _ in range(iterations):
        labels = np.argmax(x @ centroids.T, axis=1)
        for c in range(len(centroids)):
            if (labels == c).any():
                centroids[c] = x[labels == c].astype(np.float64).sum(0) / (labels == c).sum()
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return centroids


@pytest.mark.parametrize("subset", [False, True])
def test_a_fit_past_the_budget_is_seeded_on_what_fits_then_runs_lloyd_over_every_row(tmp_path, subset):
    store = scored_run(tmp_path / "run", planted_rows(900, seed=3), parts=4)
    rows = AliveRows.after(store, [], [])
    rows.fit_budget_bytes = 80 * 4 * D  # 80 rows: 8 per centroid where 128 were asked for
    x = np.concatenate([store.embeddings(int(s)).astype(np.float32) for s in store.shard_ids])
    chosen = np.sort(np.random.default_rng(1).choice(len(x), 500, replace=False)) if subset else None
    found = fit_centroids(rows, 10, seed=5, iterations=4, max_points_per_centroid=128, rows=chosen)
    start = fit_centroids(x, 10, seed=5, iterations=4, max_points_per_centroid=8, rows=chosen)
    expected = plain_spherical_lloyd(x if chosen is None else x[chosen], start, 4)
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert not np.allclose(start, expected, atol=1e-3)  # the Lloyd steps did move them
    rows.fit_budget_bytes = 9 * 4 * D
    with pytest.raises(ValueError, match=r"select\.memory_gib"):
        fit_centroids(rows, 10, seed=5)


def in_memory_select(table: pa.Table, cfg: SelectConfig, seed: int) -> tuple[set[str], list[int]]:
    """The select steps chained on one in-memory table, as select ran before it was split into Ray tasks: the
    selected keys and the rows each step removed."""
    meta = table.filter(pc.is_null(table["reject_reason"])).sort_by("key")
    emb = clip_matrix(meta["clip"])
    phash = phash_dedup(meta, cfg.phash, progress=False)
    alive = np.flatnonzero(phash.dup_of < 0)
    rank = preference_rank(meta.take(pa.array(alive)), list(cfg.phash.keep_by))
    sem = semdedup(emb[alive], rank, cfg.semdedup, seed=seed, progress=False)
    alive = alive[sem.dup_of < 0]
    hierarchy = hierarchical_kmeans(emb[alive], cfg.clusters, seed=seed, progress=False)
    keep = balanced_sample(
        hierarchy.level_ids,
        cfg.sampling.target(len(alive)),
        strategy=cfg.sampling.strategy,
        leaf_distance=hierarchy.leaf_distance,
        seed=seed,
    )
    keys = meta["key"].to_numpy(zero_copy_only=False)
    return set(keys[alive[keep]].tolist()), [phash.removed, sem.removed, int((~keep).sum())]


@pytest.mark.parametrize("parts", [1, 4])
def test_select_on_ray_selects_what_the_in_memory_steps_select(tmp_path, parts):
    """One part keeps the in-memory row order, so the selection is the same row for row. Cut into parts, the rows
    come in another order: the dedup steps remove the same counts, k-means samples other rows and the random picks
    inside each leaf differ, so only the counts are the same."""
    table = planted_rows(2400, seed=3)
    run = tmp_path / "run"
    scored_run(run, table, parts=parts)
    cfg = SelectConfig(
        semdedup=SemDedupConfig(num_clusters=8),
        clusters=HierarchyConfig(clusters=[24, 6, 2]),
        sampling=SamplingConfig(fraction=0.5),
    )
    stats = run_select(run, cfg, seed=0).stats
    selected = set(pq.read_table(run / "selection.parquet")["key"].to_pylist())
    expected, removed = in_memory_select(table, cfg, seed=0)
    steps = stats["steps"]
    assert [sum(steps[s]["rejected"].values()) for s in ("phash_dedup", "semdedup", "sampling")] == removed
    if parts == 1:
        assert selected == expected
    else:
        assert len(selected) == len(expected)
