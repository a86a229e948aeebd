"""A download shard's `_stats.json` vouches for its tar and parquet: one cut off after it is downloaded again."""

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.file_digest import record_file
from curation.download import load_download_config, run_download
from tests.curation.download.conftest import ImageServer

PATHS = ["/good.jpg", "/404.jpg", "/good.png", "/caption.jpg"]  # two shards of two URLs


def download(urls: Path, out: Path):
    overrides = [
        f"input=[{urls}]",
        f"output={out}",
        "number_sample_per_shard=2",
        "allow_loopback=true",
        "retries=0",
        "thread_count=2",
    ]
    return run_download(load_download_config(None, overrides))


def test_a_cut_off_tar_is_downloaded_again(tmp_path: Path, image_server: ImageServer, ray_local, caplog) -> None:
    urls, out = tmp_path / "urls.parquet", tmp_path / "raw"
    pq.write_table(pa.table({"url": [image_server.url(p) for p in PATHS], "caption": ["a", "b", "c", "d"]}), urls)
    assert download(urls, out).shards_done_now == 2
    for name in ("00000", "00001"):
        stats = json.loads((out / f"{name}_stats.json").read_text())
        assert stats["files"] == {f"{name}.{kind}": record_file(out / f"{name}.{kind}") for kind in ("tar", "parquet")}
    reference = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".tar", ".parquet")}
    before = dict(image_server.hits)

    tar = out / "00001.tar"
    tar.write_bytes(reference["00001.tar"][:2048])
    with caplog.at_level(logging.WARNING, logger="common.completion_marker"):
        again = download(urls, out)
    assert again.shards_done_now == 1
    assert [r.getMessage() for r in caplog.records if r.name == "common.completion_marker"] == [
        f"{tar}: expected {len(reference['00001.tar'])} bytes, found 2048: shard 00001 is redone"
    ]
    assert {path: image_server.hits[path] - before.get(path, 0) for path in PATHS} == {
        "/good.jpg": 0,
        "/404.jpg": 0,
        "/good.png": 1,
        "/caption.jpg": 1,
    }  # only the URLs of shard 00001 were fetched again
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".tar", ".parquet")} == reference
    assert again.stats["successes"] == 3 and again.stats["count"] == 4
    assert download(urls, out).shards_done_now == 0
