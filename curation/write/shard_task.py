"""Writes one output shard: read its rows' bytes back from their sources, then the common shard writer.

A row whose tar member has a recorded byte range is read by that range alone; the others (loose files, parquet
cells, compressed tars, candidates scored before ranges were recorded) by streaming their source once.
"""

import logging
from pathlib import Path

import pyarrow as pa

from common.image_decode import DecodeConfig
from common.reasons import RejectReason
from common.shard_writer import ShardWriter
from curation.readers.fetch import fetch_images
from curation.readers.ranged import read_ranges
from curation.stages.stage_nodes import this_node
from curation.write.config import WriteConfig
from curation.write.encode import shard_jpeg
from curation.write.samples import index_row, index_schema, sample_json

log = logging.getLogger(__name__)


def write_shard(out_dir: str, shard_id: int, rows: pa.Table, cfg: WriteConfig, decode: DecodeConfig, plan: str) -> dict:
    """Writes `out_dir/%05d.tar|.parquet|_stats.json`; a row whose bytes are gone is listed under `failed`."""
    levels = rows.schema.field("cluster_ids").type.list_size
    records = rows.to_pylist()
    images = read_images(records)
    failed, reencoded = [], 0
    with ShardWriter(
        out_dir=Path(out_dir), shard_id=shard_id, index_schema=index_schema(levels), image_ext="jpg"
    ) as writer:
        for row, data in zip(records, images, strict=True):
            if data is None:
                failed.append({"key": row["key"], "reason": str(RejectReason.READ_ERROR)})
                continue
            jpeg, reason, changed = shard_jpeg(data, quality=cfg.jpeg_quality, decode=decode)
            if jpeg is None:
                failed.append({"key": row["key"], "reason": str(reason)})
                continue
            reencoded += changed
            writer.write(key=row["key"], files={"jpg": jpeg, "json": sample_json(row)}, index=index_row(row))
        writer.notes.update(plan=plan, planned=len(records), reencoded=reencoded, failed=failed)
    if failed:
        log.warning("shard %05d: %d of %d rows could not be written", shard_id, len(failed), len(records))
    # The node goes back to the driver only: shard files must not depend on where they were written
    return {"shard_id": shard_id, "samples": len(records) - len(failed), "failed": failed, "node": this_node()}


def _range(row: dict) -> tuple[str, int, int] | None:
    offset, size = row.get("member_offset"), row.get("member_bytes")
    return None if offset is None or size is None else (row["source"], offset, size)


def read_images(records: list[dict]) -> list[bytes | None]:
    """Each row's image bytes, or None when they cannot be read back (a READ_ERROR for the caller)."""
    ranges = [_range(r) for r in records]
    by_range = read_ranges(r for r in ranges if r is not None)
    streamed = fetch_images((row["source"], row["member"]) for row, r in zip(records, ranges, strict=True) if r is None)
    return [
        by_range.get(r) if r is not None else streamed.get((row["source"], row["member"]))
        for row, r in zip(records, ranges, strict=True)
    ]
