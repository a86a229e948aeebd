"""The whole download on Ray: two output shards, the exact outcome of every URL, resume per shard."""

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.shard_reader import read_sample_at
from curation.download import load_download_config, run_download
from curation.readers import discover_input_shards, read_input_shard
from curation.readers.img2dataset import read_img2dataset_urls
from tests.curation.download.conftest import MAX_BYTES, ImageServer

# (path, status or error kind); 8 per shard. Captions and the extra column go with each row.
URLS = [
    ("/good.jpg", "success"),
    ("/good.png", "success"),
    ("/404.jpg", "http_404"),
    ("/flaky.jpg", "success"),
    ("/page.html", "bad_content_type"),
    ("/fake.jpg", "not_an_image"),
    ("/huge.jpg", "too_large"),
    ("/loop-a", "redirect_loop"),
    ("/redirect-private", "forbidden_address"),
    ("/redirect-metadata", "forbidden_address"),
    ("/noai.jpg", "opted_out"),
    ("/slow.jpg", "timeout"),
    ("/always500.jpg", "http_500"),
    ("/redirect-good", "success"),
    ("/caption.jpg", "success"),
    ("http://169.254.169.254/latest/meta-data/", "forbidden_address"),  # never contacted
]
PER_SHARD = 8


def write_url_list(path: Path, server: ImageServer) -> None:
    urls = [u if u.startswith("http") else server.url(u) for u, _ in URLS]
    table = pa.table(
        {
            "URL": urls,
            "TEXT": [f"caption {i}" for i in range(len(urls))],
            "similarity": [i / 100 for i in range(len(urls))],
        }
    )
    pq.write_table(table, path)


def overrides(urls: Path, out: Path) -> list[str]:
    return [
        f"input=[{urls}]",
        f"output={out}",
        "url_col=URL",
        "caption_col=TEXT",
        "save_additional_columns=[similarity]",
        f"number_sample_per_shard={PER_SHARD}",
        "allow_loopback=true",
        "timeout=0.5",
        "retries=1",
        "backoff=0.01",
        f"max_bytes={MAX_BYTES}",
        "thread_count=4",
    ]


def read_outcomes(out: Path) -> dict[str, str]:
    table = pa.concat_tables([pq.read_table(out / f"{i:05d}.parquet") for i in range(2)])
    return {row["url"]: row["status"] if row["status"] == "success" else row["error_kind"] for row in table.to_pylist()}


@pytest.fixture
def downloaded(tmp_path: Path, image_server: ImageServer, ray_local) -> tuple[Path, Path, ImageServer]:
    urls, out = tmp_path / "urls.parquet", tmp_path / "raw"
    write_url_list(urls, image_server)
    run = run_download(load_download_config(None, overrides(urls, out)))
    assert (run.shards_done_now, run.shards_total) == (2, 2)
    assert run.stats["count"] == 16 and run.stats["successes"] == 5 and run.stats["failed_to_download"] == 11
    return urls, out, image_server


def test_every_url_has_its_status(downloaded) -> None:
    _, out, server = downloaded
    expected = {u if u.startswith("http") else server.url(u): status for u, status in URLS}
    assert read_outcomes(out) == expected
    assert server.hits["/flaky.jpg"] == 2 and server.hits["/always500.jpg"] == 2 and server.hits["/slow.jpg"] == 2
    stats = [json.loads((out / f"{i:05d}_stats.json").read_text()) for i in range(2)]
    assert [(s["count"], s["successes"], s["failed_to_download"]) for s in stats] == [(8, 3, 5), (8, 2, 6)]
    assert stats[1]["error_kinds"] == {"forbidden_address": 3, "http_500": 1, "opted_out": 1, "timeout": 1}


def test_shards_hold_images_captions_and_metadata(downloaded) -> None:
    _, out, server = downloaded
    with tarfile.open(out / "00000.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("000001.json").read())
        caption = tar.extractfile("000001.txt").read().decode()
    expected = [
        f"00000{i}.{ext}" for i, image in ((0, "jpg"), (1, "png"), (3, "jpg")) for ext in (image, "json", "txt")
    ]
    assert sorted(names) == sorted(expected)
    assert meta["url"] == server.url("/good.png") and meta["status"] == "success" and meta["similarity"] == 0.01
    assert caption == "caption 1"
    index = pq.read_table(out / "00001.parquet")
    assert index.column_names[:9] == [
        "key", "url", "caption", "status", "error_kind", "error_message", "width", "height", "sha256",
    ]  # fmt: skip
    row = index.to_pylist()[6]  # /caption.jpg: zidane.jpg, 1280 x 720
    assert (row["key"], row["width"], row["height"], row["caption"]) == (
        "000016",
        1280,
        720,
        "caption 14",
    )  # shard, then row: img2dataset keys
    assert index["similarity"].to_pylist()[6] == 0.14
    assert "10.0.0.1 is a private address" in index.to_pylist()[0]["error_message"]


def test_the_index_locates_each_sample_in_its_tar(downloaded) -> None:
    """tar_offset/tar_bytes read one sample back alone; the ranges tile each tar up to its end blocks."""
    _, out, _ = downloaded
    for shard in range(2):
        tar = out / f"{shard:05d}.tar"
        rows = pq.read_table(out / f"{shard:05d}.parquet").to_pylist()
        placed = [r for r in rows if r["status"] == "success"]
        assert all(r["tar_offset"] is None and r["tar_bytes"] is None for r in rows if r["status"] != "success")
        assert [r["tar_offset"] for r in placed] == [0] + [r["tar_offset"] + r["tar_bytes"] for r in placed[:-1]]
        for row in placed:
            sample = read_sample_at(tar, tar_offset=row["tar_offset"], tar_bytes=row["tar_bytes"])
            (image,) = [v for k, v in sample.items() if k not in ("__key__", "json", "txt")]
            assert sample["__key__"] == row["key"] and hashlib.sha256(image).hexdigest() == row["sha256"]
            assert "tar_offset" not in json.loads(sample["json"])


def test_rerun_skips_finished_shards_and_redoes_a_partial_one(downloaded) -> None:
    urls, out, server = downloaded
    before = dict(server.hits)
    again = run_download(load_download_config(None, overrides(urls, out)))
    assert again.shards_done_now == 0 and dict(server.hits) == before  # not one request

    (out / "00001_stats.json").unlink()  # as if killed before its marker: the shard is redone
    (out / "00001.tar.partial").write_bytes(b"left over")
    resumed = run_download(load_download_config(None, overrides(urls, out)))
    assert resumed.shards_done_now == 1
    shard0 = ["/good.png", "/404.jpg", "/flaky.jpg", "/page.html", "/fake.jpg", "/huge.jpg", "/loop-a"]
    assert all(server.hits[p] == before[p] for p in shard0)
    assert server.hits["/good.jpg"] == before["/good.jpg"] + 1  # shard 1's /redirect-good ends there
    assert server.hits["/noai.jpg"] == before["/noai.jpg"] + 1 and server.hits["/caption.jpg"] == 2
    assert not (out / "00001.tar.partial").exists()
    assert resumed.stats["successes"] == 5


def test_changed_url_list_is_refused_on_resume(downloaded, tmp_path: Path) -> None:
    urls, out, _ = downloaded
    table = pq.read_table(urls)
    pq.write_table(table.slice(1), urls)  # every shard now holds other URLs
    with pytest.raises(RuntimeError, match="other URLs"):
        run_download(load_download_config(None, overrides(urls, out)))


def test_output_is_the_input_of_score(downloaded) -> None:
    """The score readers read the tars (and skip the index parquet); the URL of each image stays reachable."""
    _, out, server = downloaded
    shards = discover_input_shards([str(out)])
    assert [(s.kind, s.paths) for s in shards] == [("tar", ("00000.tar",)), ("tar", ("00001.tar",))]
    rows = pa.concat_tables([read_input_shard(s) for s in shards])
    assert rows.num_rows == 5 and rows["reject_reason"].null_count == 5
    urls = pa.concat_tables([read_img2dataset_urls(s) for s in shards])
    assert dict(zip(urls["key"].to_pylist(), urls["url"].to_pylist(), strict=True)).keys() == set(
        rows["key"].to_pylist()
    )
    assert sorted(urls["url"].to_pylist()) == sorted(
        server.url(p) for p in ("/good.jpg", "/good.png", "/flaky.jpg", "/redirect-good", "/caption.jpg")
    )
