import json
import math
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import webdataset as wds

from common.config import load_config
from curation.report.numbers import lookup
from pipelines.demo import DemoConfig, run_demo

REPO = Path(__file__).resolve().parents[2]


def test_demo_end_to_end_accounts_for_every_image(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the demo config names configs/ relative to the repository
    out = tmp_path / "demo"
    cfg = load_config(DemoConfig, config_path=REPO / "configs/demo.yaml", overrides=[f"output={out}", "num_cpus=2"])
    result = run_demo(cfg)
    run = result.curated_dir

    manifest = pq.read_table(out / "raw" / "corpus.parquet").to_pylist()
    expected = Counter(row["expected_reason"] for row in manifest if row["expected_reason"] is not None)
    stats = json.loads((run / "stats.json").read_text())
    # The write phase adds the nodes that wrote the shards to what score wrote
    assert stats["nodes"].pop("write") == stats["nodes"]["candidates"]  # one local node did both
    assert stats == result.curate.score.stats
    assert stats["rows_in"] == result.corpus_files == len(manifest)
    # Model filters are in audit mode: only decode and size reject, exactly as the manifest expects.
    assert stats["rejected"] == dict(expected)
    assert stats["kept"] == len(manifest) - sum(expected.values())
    audited = {name: stats["stages"][name]["would_reject"] for name in ("detect", "aesthetic", "zero_shot")}
    assert sum(sum(v.values()) for v in audited.values()) > 0  # random weights: the audit records decisions
    for name, counts in stats["stages"].items():
        assert counts["in"] == counts["kept"] + sum(counts["rejected"].values()), name
    rows = [r for p in sorted((run / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len({r["key"] for r in rows}) == len(manifest)
    assert (out / "config.yaml").exists() and (run / "config.yaml").exists()

    # Select: every kept candidate is selected or removed with a reason; the planted near-duplicates go.
    select = json.loads((run / "select_stats.json").read_text())
    removed = pq.read_table(run / "select" / "rejected.parquet")
    selection = pq.read_table(run / "selection.parquet")
    assert select["rows_in"] == stats["kept"] == selection.num_rows + removed.num_rows
    assert select["steps"]["phash_dedup"]["rejected"]["dup_phash"] > 0
    assert select["steps"]["sampling"]["kept"] == select["kept"] == selection.num_rows
    # Write: the shards hold exactly the selection; the report exists.
    tars = sorted(str(p) for p in (run / "shards").glob("*.tar"))
    assert sorted(s["__key__"] for s in wds.WebDataset(tars, shardshuffle=False)) == sorted(
        selection["key"].to_pylist()
    )
    assert result.curate.write.manifest["samples"] == selection.num_rows
    assert result.curate.report.html.exists()

    # Report: every plot it lists exists, every number on the page is its stats.json's, and the funnel is the phases'.
    report = json.loads(result.curate.report.stats.read_text())
    assert report["phases"] == ["score", "select", "write"]
    for name in report["plots"].values():
        assert (run / "report" / name).stat().st_size > 0
    shown = re.findall(r'data-stat="([^"]+)">([^<]*)<', result.curate.report.html.read_text())
    assert len(shown) > 50
    for path, text in shown:
        assert float(text.replace(",", "")) == lookup(report, path), path
    phases = [*stats["stages"].values(), *select["steps"].values()]
    for row, counts in zip(report["funnel"], phases, strict=False):
        assert (row["in"], row["kept"], row["rejected"]) == (counts["in"], counts["kept"], counts["rejected"])
    assert report["funnel"][-1]["step"] == "written" and report["funnel"][-1]["kept"] == selection.num_rows

    # Pretrain: the tiny backbone on the demo shards; the loss goes down and the checkpoint is there.
    losses = [m["loss"] for m in result.pretrain.metrics]
    assert len(losses) == 40 and all(map(math.isfinite, losses))
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8
    assert (result.pretrain_dir / "checkpoints" / "latest").exists()
    assert len((result.pretrain_dir / "metrics.jsonl").read_text().splitlines()) == 40

    # Post-training predict: each task wrote its raw output and a picture per photo, at the photo's size.
    for task, files in result.predictions.items():
        assert len(files) == 2 * 3 and all(f.stat().st_size > 0 for f in files), task
        assert sum(f.suffix == ".png" for f in files) >= 3, task
