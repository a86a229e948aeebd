import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf
from PIL import Image

from common.schemas import candidate_schema
from curation.report import NoPhaseOutputError, ReportConfig, build_report
from curation.report.numbers import lookup
from curation.report.thumbnails import GAP, LINE, PLACEHOLDER
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.score.funnel import check_invariant, funnel_counts, reason_owner

YAWS = ["frontal", "three_quarter", "profile", "back"]
SCORE_STAGES = [
    (
        "decode",
        ["empty_file", "not_an_image", "truncated", "decode_error", "too_large", "too_small", "bad_aspect_ratio"],
    ),
    ("phash", []),
    ("detect", ["no_person"]),
    ("head_pose", []),
    ("clip", []),
    ("aesthetic", ["low_aesthetic"]),
    ("nsfw", ["nsfw"]),
    ("zero_shot", ["not_photo", "text_overlay"]),
]
CLUSTER_LEVELS = 3
BASE_PLOTS = ["funnel", "rejections", "score_aesthetic", "score_nsfw", "score_realism", "score_text_overlay"]
BASE_PLOTS += ["person_short_side", "resolution", "head_pose"]
SELECT_PLOTS = ["duplicates", "dup_pairs_dup_phash", "dup_pairs_dup_embedding", "cluster_sizes"]
CONFIG = ReportConfig(top_clusters=3, thumbs_per_cluster=4, thumb_size=32, dup_examples=2)
PAIR_PIXEL = (GAP + 16, 2 * LINE + 2 * GAP + 8)  # inside the first removed tile, off the placeholder's cross


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig())


def candidate_rows(corpus, rng) -> list[dict]:
    """A candidate per corpus file, audit-mode scores on what decodes; a few rows rejected by no_person."""
    rows = []
    for i, e in enumerate(corpus.entries):
        reason = e.expected_reason
        decoded = reason is None
        if decoded and i % 9 == 4:
            reason = "no_person"
        side = float(rng.uniform(0, 900)) if decoded else None
        aesthetic = float(rng.uniform(2, 8))
        rows.append(
            {
                "key": e.key,
                "source": str(corpus.images_dir / e.path),
                "member": None,
                "width": e.width,
                "height": e.height,
                "phash": int(rng.integers(0, 2**63)),
                "persons": [{"box": [0.0, 0.0, side, side], "conf": 0.9}] if side else [],
                "max_person_short_side": side,
                "head_pose": {"yaw_class": YAWS[i % 4], "face_keypoints_visible": 3} if i % 7 else None,
                "clip": None,
                "aesthetic": aesthetic if decoded and reason is None else None,
                "realism": float(rng.uniform(0, 1)) if decoded and reason is None else None,
                "text_overlay": float(rng.uniform(0, 1)) if decoded and reason is None else None,
                "nsfw": (i * 37 % 100) / 100 if decoded and reason is None else None,  # own stream: rng untouched
                "would_reject": ["low_aesthetic"] if decoded and reason is None and aesthetic < 4.5 else [],
                "reject_reason": reason,
            }
        )
    return rows


def write_score(run: Path, rows: list[dict]) -> dict:
    table = pa.Table.from_pylist(rows, schema=candidate_schema(8))
    (run / "candidates").mkdir(parents=True)
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), run / "candidates" / "part-00000.parquet")
    pq.write_table(table.slice(half), run / "candidates" / "part-00001.parquet")
    funnel = funnel_counts(table, [name for name, _ in SCORE_STAGES], reason_owner(SCORE_STAGES, ["read_error"]))
    check_invariant(funnel)
    rejected = Counter(r["reject_reason"] for r in rows if r["reject_reason"])
    stats = {
        "rows_in": table.num_rows,
        "kept": table.num_rows - rejected.total(),
        "rejected": dict(sorted(rejected.items())),
        "stages": funnel,
        "stage_seconds": {name: 0.5 for name, _ in SCORE_STAGES},
        "shards": 2,
        "last_run": {"shards_scored": 2, "seconds": 1.0},
    }
    (run / "stats.json").write_text(json.dumps(stats))
    OmegaConf.save(
        OmegaConf.create({"stages": {"aesthetic": {"threshold": 5.0}}, "decode": {"min_short_side": 384}}),
        run / "config.yaml",
    )
    return stats


def size_stats(sizes: list[int]) -> dict:
    p = np.asarray(sizes, dtype=float) / max(sum(sizes), 1)
    p = p[p > 0]
    return {
        "count": len(sizes),
        "min": min(sizes),
        "median": float(np.median(sizes)),
        "max": max(sizes),
        "entropy": float(-(p * np.log(p)).sum()),
        "gini": round(float(1 - (p**2).sum()), 6),
    }


def level_sizes(cluster_ids: list[list[int]]) -> list[dict]:
    out = []
    for level in range(CLUSTER_LEVELS):
        sizes = sorted(Counter(ids[level] for ids in cluster_ids).values(), reverse=True)
        out.append({"level": level + 1, "sizes": sizes, "stats": size_stats(sizes)})
    return out


def write_select(run: Path, rows: list[dict], corpus) -> dict:
    """phash dedup of near-duplicates onto their kept original, one embedding dup, then downsampling."""
    kept = [r for r in rows if r["reject_reason"] is None]
    by_key = {e.key: e for e in corpus.entries}
    original_key = {e.origin: e.key for e in corpus.entries if e.kind == "original"}
    kept_keys = {r["key"] for r in kept}
    rejected = []
    for r in kept:
        e = by_key[r["key"]]
        if e.kind == "near_duplicate" and original_key.get(e.origin) in kept_keys:
            rejected.append({"key": r["key"], "reject_reason": "dup_phash", "dup_of": original_key[e.origin]})
    n_phash = len(rejected)
    alive = [r for r in kept if r["key"] not in {d["key"] for d in rejected}]
    rejected.append({"key": alive[1]["key"], "reject_reason": "dup_embedding", "dup_of": alive[0]["key"]})
    alive = alive[:1] + alive[2:]
    ids = {r["key"]: [i % 8, i % 8 // 2, i % 8 // 4] for i, r in enumerate(alive)}
    before = level_sizes(list(ids.values()))
    selected, dropped = alive[:-2], alive[-2:]
    rejected += [{"key": r["key"], "reject_reason": "balance_downsampled", "dup_of": None} for r in dropped]
    after = level_sizes([ids[r["key"]] for r in selected])
    n_kept = len(kept)
    steps = {
        "phash_dedup": {"in": n_kept, "kept": n_kept - n_phash, "rejected": {"dup_phash": n_phash}, "groups": 4},
        "semdedup": {"in": n_kept - n_phash, "kept": len(alive), "rejected": {"dup_embedding": 1}, "eps": 0.05},
        "clustering": {"in": len(alive), "kept": len(alive), "rejected": {}, "clusters_per_level": [8, 4, 2]},
        "sampling": {"in": len(alive), "kept": len(selected), "rejected": {"balance_downsampled": 2}, "target": 20},
    }
    select_stats = {"rows_in": n_kept, "kept": len(selected), "seed": 0, "steps": steps}
    select_stats["clusters"] = {"levels": CLUSTER_LEVELS, "before": before, "after": after}
    (run / "select_stats.json").write_text(json.dumps(select_stats))
    (run / "select").mkdir()
    pq.write_table(pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA), run / "select" / "rejected.parquet")
    columns = [c for c in candidate_schema(8).names if c not in ("phash", "clip", "reject_reason")]
    table = pa.Table.from_pylist(
        [{c: r.get(c) for c in columns} | {"cluster_ids": ids[r["key"]], "leaf_distance": 0.1} for r in selected],
        schema=selection_schema(),
    )
    pq.write_table(table, run / "selection.parquet")
    return select_stats


REJECTED_SCHEMA = pa.schema([("key", pa.string()), ("reject_reason", pa.string()), ("dup_of", pa.string())])


def selection_schema() -> pa.Schema:
    drop = ("phash", "clip", "reject_reason")
    fields = [f for f in candidate_schema(8) if f.name not in drop]
    return pa.schema([*fields, ("cluster_ids", pa.list_(pa.int32(), CLUSTER_LEVELS)), ("leaf_distance", pa.float32())])


def write_manifest(run: Path, samples: int) -> dict:
    manifest = {
        "shards": [{"tar": "00000.tar", "index": "00000.parquet", "samples": samples}],
        "samples": samples,
        "config_hash": "abc123",
        "failed": [{"key": "k-lost", "reason": "read_error"}],
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def make_full_run(run: Path, corpus) -> dict:
    rows = candidate_rows(corpus, np.random.default_rng(0))
    inputs = {"stats": write_score(run, rows)}
    inputs["select"] = write_select(run, rows, corpus)
    inputs["manifest"] = write_manifest(run, inputs["select"]["kept"] - 1)
    return inputs


@pytest.fixture
def full_run(tmp_path, corpus):
    return tmp_path / "run", make_full_run(tmp_path / "run", corpus)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, corpus):
    """One report of a run where score, select and write all ran; read-only for the tests that share it."""
    run = tmp_path_factory.mktemp("full") / "run"
    inputs = make_full_run(run, corpus)
    return run, inputs, build_report(run, config=CONFIG)


def data_stats(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-stat="([^"]+)">([^<]*)<', html)


def assert_self_contained(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html
    for src in re.findall(r'src="([^"]*)"', html):
        assert src.startswith("data:image/png;base64,")


def tile_pixel(path: Path, size: int) -> tuple:
    """A pixel of the first tile of a cluster grid, off the placeholder's diagonals."""
    with Image.open(path) as im:
        return im.convert("RGB").getpixel((GAP + size // 2, LINE + 2 * GAP + size // 4))


def test_full_run_renders_every_plot_self_contained(full_report):
    run, _, result = full_report
    assert result.html == run / "report" / "index.html" and result.stats == run / "report" / "stats.json"
    stats = json.loads(result.stats.read_text())
    assert stats["phases"] == ["score", "select", "write"]
    tops = [f"top_cluster_{i:02d}" for i in (1, 2)]  # two top-level clusters exist
    assert list(stats["plots"]) == [*BASE_PLOTS, *SELECT_PLOTS, *tops]
    assert sorted(p.name for p in result.plots) == sorted(f"{n}.png" for n in stats["plots"])
    for path in result.plots:
        with Image.open(path) as im:
            im.verify()
        assert path.parent == run / "report"
    html = result.html.read_text()
    assert_self_contained(html)
    assert html.count('src="data:image/png;base64,') == len(result.plots)
    assert "not run yet" not in html
    assert tile_pixel(run / "report" / "top_cluster_01.png", CONFIG.thumb_size) != PLACEHOLDER
    with Image.open(run / "report" / "dup_pairs_dup_phash.png") as im:  # the pair's pixels were read back
        assert im.convert("RGB").getpixel(PAIR_PIXEL) != PLACEHOLDER
    assert [t["shown"] for t in stats["top_clusters"]] == [4, 4]


def test_every_shown_number_is_in_stats_and_matches_the_inputs(full_report):
    _, inputs, result = full_report
    stats = json.loads(result.stats.read_text())
    shown = data_stats(result.html.read_text())
    assert len(shown) > 100
    for path, text in shown:
        assert float(text.replace(",", "")) == lookup(stats, path), path
    steps = [*inputs["stats"]["stages"].items(), *inputs["select"]["steps"].items()]
    assert [r["step"] for r in stats["funnel"]] == [name for name, _ in steps] + ["written"]
    for row, (_, counts) in zip(stats["funnel"], steps, strict=False):
        assert (row["in"], row["kept"], row["rejected"]) == (counts["in"], counts["kept"], counts["rejected"])
        assert row["would_reject"] == counts.get("would_reject", {})
    written = stats["funnel"][-1]
    assert (written["kept"], written["rejected"]) == (inputs["manifest"]["samples"], {"read_error": 1})
    assert stats["written"] == {
        "shards": 1,
        "samples": inputs["manifest"]["samples"],
        "failed": 1,
        "config_hash": "abc123",
    }
    shown_paths = {p for p, _ in shown}
    assert "funnel.6.would_reject.low_aesthetic" in shown_paths  # audit-mode counts are on the page
    assert (
        stats["scores"]["aesthetic"]["threshold"] == 5.0
        and stats["scores"]["aesthetic"]["threshold_source"] == "config"
    )
    assert stats["scores"]["realism"]["threshold_source"] == "default"
    assert stats["duplicates"] == {
        "dup_phash": inputs["select"]["steps"]["phash_dedup"]["rejected"]["dup_phash"],
        "dup_embedding": 1,
    }
    assert stats["clusters"]["clusters_per_level"] == [8, 4, 2]
    assert sum(t["selected"] for t in stats["top_clusters"]) == inputs["select"]["kept"]


def test_score_only_run_marks_select_and_write_not_run(tmp_path, corpus):
    run = tmp_path / "run"
    write_score(run, candidate_rows(corpus, np.random.default_rng(1)))
    result = build_report(run, config=CONFIG)
    stats = json.loads(result.stats.read_text())
    assert stats["phases"] == ["score"]
    assert list(stats["plots"]) == BASE_PLOTS
    assert stats["duplicates"] is None and stats["clusters"] is None and stats["written"] is None
    html = result.html.read_text()
    assert_self_contained(html)
    for section in ("select steps", "write steps", "Duplicates", "Cluster sizes", "Cluster thumbnails", "Shards"):
        assert f"{section}: not run yet" in html


def test_nsfw_histogram_with_its_threshold_and_runs_scored_before_it(tmp_path, corpus):
    run = tmp_path / "run"
    rows = candidate_rows(corpus, np.random.default_rng(1))
    write_score(run, rows)
    OmegaConf.save(OmegaConf.create({"stages": {"nsfw": {"threshold": 0.7}}}), run / "config.yaml")
    values = [r["nsfw"] for r in rows if r["nsfw"] is not None]
    result = build_report(run, config=CONFIG)
    stats = json.loads(result.stats.read_text())
    nsfw = stats["scores"]["nsfw"]
    assert (nsfw["count"], nsfw["threshold"], nsfw["threshold_source"], nsfw["rejects"]) == (
        len(values),
        0.7,
        "config",
        "above",
    )
    assert nsfw["on_rejecting_side"] == sum(v > 0.7 for v in values) > 0  # float32 0.7 vs the float32 values
    html = result.html.read_text()
    assert f'<tr><td>nsfw</td><td data-stat="scores.nsfw.count">{len(values)}<' in html  # the Scores table row
    assert 'data-stat="scores.nsfw.threshold">0.7<' in html and "score_nsfw.png: Scores" in html  # and its histogram
    assert (run / "report" / "score_nsfw.png") in result.plots

    # Candidates written before the nsfw stage existed: no column, no histogram, the rest as before.
    for path in (run / "candidates").glob("*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["nsfw"]), path)
    result = build_report(run, config=CONFIG)
    stats = json.loads(result.stats.read_text())
    assert "nsfw" not in stats["scores"] and "score_nsfw" not in stats["plots"]
    assert list(stats["plots"]) == [p for p in BASE_PLOTS if p != "score_nsfw"]
    html = result.html.read_text()
    assert "scores.nsfw" not in html and "score_nsfw" not in html


def test_empty_candidates_and_zero_kept_rows_render(tmp_path):
    run = tmp_path / "run"
    (run / "candidates").mkdir(parents=True)
    pq.write_table(candidate_schema(8).empty_table(), run / "candidates" / "part-00000.parquet")
    empty = {"in": 0, "kept": 0, "rejected": {}, "would_reject": {}}
    (run / "stats.json").write_text(json.dumps({"rows_in": 0, "kept": 0, "rejected": {}, "stages": {"read": empty}}))
    steps = {"sampling": {"in": 0, "kept": 0, "rejected": {}}}
    clusters = {"levels": 1, "before": [{"level": 1, "sizes": [], "stats": {}}], "after": []}
    (run / "select_stats.json").write_text(json.dumps({"rows_in": 0, "kept": 0, "steps": steps, "clusters": clusters}))
    pq.write_table(selection_schema().empty_table(), run / "selection.parquet")
    write_manifest(run, 0)
    result = build_report(run, config=CONFIG)
    stats = json.loads(result.stats.read_text())
    assert stats["scores"]["aesthetic"]["count"] == 0 and stats["scores"]["aesthetic"]["mean"] is None
    assert stats["top_clusters"] == [] and stats["duplicates"] == {}
    assert "No selected rows to show." in result.html.read_text()
    for path in result.plots:
        with Image.open(path) as im:
            im.verify()


def test_missing_thumbnail_bytes_become_placeholders(full_run, corpus):
    run, _ = full_run
    for path in (run / "candidates").glob("*.parquet"):  # sources now point nowhere
        table = pq.read_table(path)
        sources = pa.array([s + ".gone" for s in table["source"].to_pylist()], pa.string())
        pq.write_table(table.set_column(table.schema.get_field_index("source"), "source", sources), path)
    table = pq.read_table(run / "selection.parquet")
    sources = pa.array([s + ".gone" for s in table["source"].to_pylist()], pa.string())
    pq.write_table(table.set_column(1, "source", sources), run / "selection.parquet")
    result = build_report(run, config=CONFIG)
    assert tile_pixel(run / "report" / "top_cluster_01.png", CONFIG.thumb_size) == PLACEHOLDER
    with Image.open(run / "report" / "dup_pairs_dup_phash.png") as im:
        assert im.convert("RGB").getpixel(PAIR_PIXEL) == PLACEHOLDER
    assert (run / "report" / "dup_pairs_dup_embedding.png") in result.plots


def test_rerun_is_deterministic_and_removes_stale_plots(full_report, tmp_path):
    shared, _, first = full_report
    run = tmp_path / "run"
    shutil.copytree(shared, run)
    build_report(run, config=ReportConfig(top_clusters=1, thumb_size=32))
    assert not (run / "report" / "top_cluster_02.png").exists()
    again = json.loads(build_report(run, config=CONFIG).stats.read_text())
    assert (run / "report" / "top_cluster_02.png").exists()
    assert again | {"run_dir": None} == json.loads(first.stats.read_text()) | {"run_dir": None}


def test_a_dir_without_phase_output_is_refused(tmp_path):
    with pytest.raises(NoPhaseOutputError, match=r"stats\.json"):
        build_report(tmp_path)


def split_into_parts(path: Path, parts: int, rng) -> None:
    """The file becomes a directory of the same name: `parts` part files of shuffled rows, and one empty part."""
    table = pq.read_table(path)
    table = table.take(rng.permutation(table.num_rows))
    path.unlink()
    path.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(table.num_rows), parts)):
        pq.write_table(table.take(rows), path / f"part-{i:05d}.parquet")
    pq.write_table(table.slice(0, 0), path / f"part-{parts:05d}.parquet")


def test_selection_and_rejected_as_directories_of_parts_give_the_same_report(full_report, tmp_path):
    shared, _, first = full_report
    run = tmp_path / "run"
    shutil.copytree(shared, run)
    rng = np.random.default_rng(7)
    split_into_parts(run / "selection.parquet", 3, rng)
    split_into_parts(run / "select" / "rejected.parquet", 4, rng)
    result = build_report(run, config=CONFIG)
    stats = json.loads(result.stats.read_text())
    assert stats | {"run_dir": None} == json.loads(first.stats.read_text()) | {"run_dir": None}
    for path in first.plots:  # the same examples too: they follow the keys, not the files
        assert (run / "report" / path.name).read_bytes() == path.read_bytes(), path.name

    # Without select_stats.json the duplicate counts come from the rejected parts.
    (run / "select_stats.json").unlink()
    stats = json.loads(build_report(run, config=CONFIG).stats.read_text())
    reasons = Counter(pq.read_table(run / "select" / "rejected.parquet")["reject_reason"].to_pylist())
    assert stats["duplicates"] == {"dup_phash": reasons["dup_phash"], "dup_embedding": 1}
    assert stats["top_clusters"] == json.loads(first.stats.read_text())["top_clusters"]
