"""The full curate (score -> select -> write -> report) over every kind of malformed input at once: the run finishes,
every input row is there exactly once with its reason (or kept), and the funnel adds up phase after phase."""

import json
import logging
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import webdataset as wds

from common.reasons import RejectReason
from curation.config import load_curate_config
from curation.curate import run_curate
from curation.readers import discover_input_shards
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.sample_corpus.hostile import build_hostile_inputs

REPO = Path(__file__).resolve().parents[3]
MIN_KINDS = 20


def test_curate_accounts_for_every_row_of_a_hostile_corpus(ray_local, tmp_path, caplog):
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig())
    hostile_dir = tmp_path / "hostile"
    hostile = build_hostile_inputs(hostile_dir)
    kinds = {e.kind for e in corpus.entries} | {r.kind for r in hostile} | {"parquet_without_image_column"}
    assert len(kinds) >= MIN_KINDS, sorted(kinds)
    inputs = [str(corpus.images_dir), str(hostile_dir)]
    names = [s.shard_name for s in discover_input_shards(inputs, files_per_shard=16)]
    mid = names.index("mid_list/corrupt.tar")
    assert 0 < mid < len(names) - 1  # the damaged tar sits between readable inputs

    # Expected row per (source relative to its input, member): the manifest's decode outcome, the hostile list's.
    expected = {(f"{corpus.images_dir}/{e.path}", None): e.expected_reason for e in corpus.entries}
    expected |= {(f"{hostile_dir}/{r.path}", r.member): r.reason for r in hostile}
    out = tmp_path / "run"
    overrides = [f"input=[{','.join(inputs)}]", f"output={out}", "num_cpus=2"]
    with caplog.at_level(logging.INFO, logger="curation.readers.discover"):
        result = run_curate(load_curate_config(REPO / "configs/curation/demo.yaml", overrides))
    assert "parquet_without_image_column': 1" in caplog.text  # skipped as not an image input, and counted

    rows = [r for p in sorted((out / "candidates").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    got = {(r["source"], r["member"]): r["reject_reason"] for r in rows}
    assert len(got) == len(rows) == len({r["key"] for r in rows}) == len(expected)
    assert got == expected  # model filters audit in the demo config: only reader and decode reasons act

    # Funnel: score, then select, then write, each taking exactly what the phase before kept.
    stats = json.loads((out / "stats.json").read_text())
    rejected = Counter(v for v in expected.values() if v is not None)
    assert stats["rows_in"] == len(expected)
    assert stats["rejected"] == dict(sorted(rejected.items()))
    assert stats["kept"] == len(expected) - rejected.total()
    for name, counts in stats["stages"].items():
        assert counts["in"] == counts["kept"] + sum(counts["rejected"].values()), name
    select = result.select.stats
    selection = pq.read_table(out / "selection.parquet")
    removed = pq.read_table(out / "select" / "rejected.parquet")
    assert select["rows_in"] == stats["kept"] == selection.num_rows + removed.num_rows
    assert set(selection["key"].to_pylist()).isdisjoint(removed["key"].to_pylist())
    # The same image under one key in the folder and one in each of two tars: phash dedup keeps at most one.
    copies = {r["key"] for r in rows if r["member"] == "000000000.jpg" and "/tars/dup_" in r["source"]}
    copies |= {r["key"] for r in rows if r["source"].endswith("/originals/astronaut.jpg")}
    dropped = dict(zip(removed["key"].to_pylist(), removed["reject_reason"].to_pylist(), strict=True))
    assert len(copies) == 3 and sum(dropped.get(k) == RejectReason.DUP_PHASH for k in copies) >= 2
    tars = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    written = [s["__key__"] for s in wds.WebDataset(tars, shardshuffle=False)]
    assert sorted(written) == sorted(selection["key"].to_pylist())
    assert result.write.manifest["samples"] == selection.num_rows and result.write.manifest["failed"] == []
    report = json.loads(result.report.stats.read_text())
    assert report["funnel"][0]["in"] == len(expected)
    assert report["funnel"][-1]["step"] == "written" and report["funnel"][-1]["kept"] == selection.num_rows
