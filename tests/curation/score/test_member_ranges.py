"""The score phase keeps the byte range the tar reader records for each member: every candidate of an uncompressed
tar carries `member_offset` and `member_bytes`, and they read back the bytes the reader read."""

from pathlib import Path

import pyarrow.parquet as pq

from curation.config import load_curate_config
from curation.readers import discover_input_shards, read_input_shard
from curation.readers.ranged import read_ranges
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.score.runner import run_score

DEMO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "curation" / "demo.yaml"


def test_candidates_of_tars_carry_their_member_ranges(ray_local, tmp_path):
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig(samples_per_shard=16))
    out = tmp_path / "run"
    run_score(load_curate_config(DEMO_CONFIG, [f'input=["{corpus.tars_dir}"]', f"output={out}"]))
    rows = [r for p in sorted((out / "candidates").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    read = {}
    for shard in discover_input_shards([str(corpus.tars_dir)]):
        read |= {r["key"]: r for r in read_input_shard(shard).to_pylist()}
    assert len(rows) == len(read)
    with_image = [r for r in rows if read[r["key"]]["image"] is not None]
    assert len(with_image) >= 40
    for row in rows:
        assert (row["member_offset"], row["member_bytes"]) == (
            read[row["key"]]["member_offset"],
            read[row["key"]]["member_bytes"],
        )
    ranges = {r["key"]: (r["source"], r["member_offset"], r["member_bytes"]) for r in with_image}
    got = read_ranges(ranges.values())
    assert {k: got[v] for k, v in ranges.items()} == {k: read[k]["image"] for k in ranges}
