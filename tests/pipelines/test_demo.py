import json
from collections import Counter

import pyarrow.parquet as pq
import webdataset as wds

from common.config import load_config
from common.keys import sample_key
from pipelines.demo import DemoConfig, run_demo


def test_demo_end_to_end_accounts_for_every_image(tmp_path):
    out = tmp_path / "demo"
    cfg = load_config(DemoConfig, overrides=[f"output={out}", "samples_per_shard=8", "num_cpus=2"])
    stats = run_demo(cfg)

    manifest = pq.read_table(out / "raw" / "corpus.parquet").to_pylist()
    expected = Counter(row["expected_reason"] for row in manifest if row["expected_reason"] is not None)
    valid = [row for row in manifest if row["expected_reason"] is None]
    assert stats["rows_in"] == len(manifest)
    assert stats["rejected"] == dict(expected)
    assert stats["kept"] == len(valid) == stats["rows_in"] - sum(expected.values())
    assert stats["shards"] == -(-len(valid) // 8)
    assert json.loads((out / "stats.json").read_text()) == stats
    assert (out / "config.yaml").exists()

    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False))
    images = (out / "raw" / "images").resolve()
    want_keys = {sample_key(f"file://{images / row['path']}") for row in valid}
    assert {s["__key__"] for s in samples} == want_keys
    assert all(s["jpg"][:2] == b"\xff\xd8" for s in samples)  # every stored image is a JPEG
    by_key = {json.loads(s["json"])["key"]: json.loads(s["json"]) for s in samples}
    sizes = {sample_key(f"file://{images / row['path']}"): (row["width"], row["height"]) for row in valid}
    assert {k: (m["width"], m["height"]) for k, m in by_key.items()} == sizes
