"""One output shard: download its URLs on a thread pool and write it in the img2dataset layout.

`%05d.tar` holds the images that downloaded (`<key>.<ext>`, `<key>.txt` caption, `<key>.json` metadata),
`%05d.parquet` one row per input URL with its status and error (and, for a downloaded one, the byte range of its
sample in the tar), and `%05d_stats.json` the counts and the size and SHA-256 of the tar and the parquet (`files`,
hashed while they are written). All three are written under temporary names and renamed into place, the stats file
last: it is the shard's completion marker.
"""

import hashlib
import io
import json
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import webdataset as wds
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

import common.image_decode  # noqa: F401  (registers the HEIF opener for the header read below)
from common.completion_marker import FILES
from common.file_digest import HashingWriter, write_parquet
from common.shard_writer import PARTIAL_SUFFIX, TAR_MTIME, shard_paths
from curation.download.address_guard import Resolver, system_resolver
from curation.download.config import DownloadConfig
from curation.download.fetch import Fetcher, FetchResult
from curation.download.url_table import CAPTION, URL

log = logging.getLogger(__name__)

SUCCESS, FAILED = "success", "failed_to_download"  # img2dataset's status values

BASE_FIELDS = [
    pa.field("key", pa.string(), nullable=False),
    pa.field(URL, pa.string()),
    pa.field(CAPTION, pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error_kind", pa.string()),  # a curation.download.fetch.ErrorKind value or http_<code>; null on success
    pa.field("error_message", pa.string()),
    pa.field("width", pa.int32()),  # from the image header; null when Pillow cannot read it
    pa.field("height", pa.int32()),
    pa.field("sha256", pa.string()),  # of the bytes as stored in the tar
    # Where the sample lies in the tar, as in a curated shard's index (common.shard_reader.read_sample_at reads it
    # back alone); null for a URL that did not download.
    pa.field("tar_offset", pa.int64()),  # byte offset of the sample's first tar header
    pa.field("tar_bytes", pa.int64()),  # bytes the sample spans, headers included
]


def urls_fingerprint(urls: list[str | None]) -> str:
    """Identifies a shard's input, so a resumed run can tell that the URL list changed under it."""
    return hashlib.sha256("\n".join(u or "" for u in urls).encode()).hexdigest()


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None, None


def _row(key: str, url: str | None, caption: str | None, result: FetchResult) -> dict[str, Any]:
    width, height = _image_size(result.data) if result.ok else (None, None)
    return {
        "key": key,
        URL: url,
        CAPTION: caption,
        "status": SUCCESS if result.ok else FAILED,
        "error_kind": result.error_kind,
        "error_message": result.error_message,
        "width": width,
        "height": height,
        "sha256": hashlib.sha256(result.data).hexdigest() if result.ok else None,
        "tar_offset": None,  # set as the sample is written
        "tar_bytes": None,
    }


def _fetch_all(fetcher: Fetcher, urls: list[str | None], threads: int, label: str) -> list[FetchResult]:
    def one(url: str | None) -> FetchResult:
        if not url:
            return FetchResult(url="", error_kind="bad_url", error_message="the url cell is empty")
        return fetcher.fetch(url)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(tqdm(pool.map(one, urls), total=len(urls), desc=label, unit="url", mininterval=5, leave=False))


def download_shard(
    cfg: DownloadConfig,
    shard_id: int,
    table: pa.Table,
    keys: list[str],
    out_dir: str | os.PathLike,
    *,
    resolver: Resolver = system_resolver,
) -> dict[str, Any]:
    """Download `table` (columns url, caption, extras) as shard `shard_id`; returns its stats."""
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = shard_paths(out, shard_id)
    tmp = {k: p.with_name(p.name + PARTIAL_SUFFIX) for k, p in paths.items()}
    urls, captions = table[URL].to_pylist(), table[CAPTION].to_pylist()
    extras = {name: table[name].to_pylist() for name in cfg.save_additional_columns}

    fetcher = Fetcher(cfg, resolver=resolver)
    try:
        results = _fetch_all(fetcher, urls, cfg.thread_count, f"shard {shard_id:05d}")
    finally:
        fetcher.close()

    rows = [
        _row(key, url, caption, result) for key, url, caption, result in zip(keys, urls, captions, results, strict=True)
    ]
    with (
        HashingWriter(open(tmp["tar"], "wb")) as tar_file,  # hashes the tar as it streams
        wds.TarWriter(tar_file, user="", group="", mode=0o644, encoder=False, mtime=TAR_MTIME) as tar,
    ):
        for i, (row, result) in enumerate(zip(rows, results, strict=True)):
            if not result.ok:
                continue
            meta = {**_without_location(row), **{name: values[i] for name, values in extras.items()}}
            sample = {"__key__": row["key"], result.ext: result.data, "json": _json_bytes(meta)}
            if row[CAPTION] is not None:
                sample["txt"] = row[CAPTION].encode("utf-8")
            start = tar.tarstream.offset
            tar.write(sample)
            row["tar_offset"], row["tar_bytes"] = start, tar.tarstream.offset - start

    index = pa.Table.from_pylist(rows, schema=pa.schema(BASE_FIELDS))
    for name in cfg.save_additional_columns:
        index = index.append_column(name, table[name])
    parquet_record = write_parquet(index, tmp["parquet"])

    statuses = Counter(row["status"] for row in rows)
    stats = {
        "shard": f"{shard_id:05d}",
        "count": len(rows),
        "successes": statuses[SUCCESS],
        "failed_to_download": statuses[FAILED],
        "error_kinds": dict(sorted(Counter(r["error_kind"] for r in rows if r["error_kind"]).items())),
        "requests": sum(r.attempts for r in results),
        "urls_sha256": urls_fingerprint(urls),
        "duration": round(time.perf_counter() - start, 3),
        FILES: {paths["tar"].name: tar_file.record(), paths["parquet"].name: parquet_record},
    }
    tmp["stats"].write_bytes(_json_bytes(stats))
    for kind in ("tar", "parquet", "stats"):  # the stats file last: it marks the shard complete
        os.replace(tmp[kind], paths[kind])
    log.info("shard %05d: %d of %d URLs downloaded", shard_id, stats["successes"], stats["count"])
    return stats


def _without_location(row: dict[str, Any]) -> dict[str, Any]:
    """A sample's json metadata: its index row but where it lies in the tar, which is known only once written."""
    return {k: v for k, v in row.items() if k not in ("tar_offset", "tar_bytes")}


def _json_bytes(value: Any) -> bytes:
    # default=str: extra input columns may hold dates or decimals
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
