import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from common.config import load_config
from pipelines.demo import DemoConfig, run_demo

REPO = Path(__file__).resolve().parents[2]


def test_demo_end_to_end_accounts_for_every_image(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the demo config names configs/ relative to the repository
    out = tmp_path / "demo"
    cfg = load_config(DemoConfig, config_path=REPO / "configs/demo.yaml", overrides=[f"output={out}", "num_cpus=2"])
    result = run_demo(cfg)

    manifest = pq.read_table(out / "raw" / "corpus.parquet").to_pylist()
    expected = Counter(row["expected_reason"] for row in manifest if row["expected_reason"] is not None)
    stats = json.loads((out / "score" / "stats.json").read_text())
    assert stats == result.score.stats
    assert stats["rows_in"] == result.corpus_files == len(manifest)
    # Model filters are in audit mode: only decode and size reject, exactly as the manifest expects.
    assert stats["rejected"] == dict(expected)
    assert stats["kept"] == len(manifest) - sum(expected.values())
    audited = {name: stats["stages"][name]["would_reject"] for name in ("detect", "aesthetic", "zero_shot")}
    assert sum(sum(v.values()) for v in audited.values()) > 0  # random weights: the audit records decisions
    for name, counts in stats["stages"].items():
        assert counts["in"] == counts["kept"] + sum(counts["rejected"].values()), name
    rows = [r for p in sorted((out / "score" / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len({r["key"] for r in rows}) == len(manifest)
    assert (out / "config.yaml").exists() and (out / "score" / "config.yaml").exists()
