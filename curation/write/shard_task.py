"""Writes one output shard: read its rows' bytes back from their sources, then the common shard writer."""

import logging
from pathlib import Path

import pyarrow as pa

from common.image_decode import DecodeConfig
from common.reasons import RejectReason
from common.shard_writer import ShardWriter
from curation.readers.fetch import fetch_images
from curation.write.config import WriteConfig
from curation.write.encode import shard_jpeg
from curation.write.samples import index_row, index_schema, sample_json

log = logging.getLogger(__name__)


def write_shard(out_dir: str, shard_id: int, rows: pa.Table, cfg: WriteConfig, decode: DecodeConfig, plan: str) -> dict:
    """Writes `out_dir/%05d.tar|.parquet|_stats.json`; a row whose bytes are gone is listed under `failed`."""
    levels = rows.schema.field("cluster_ids").type.list_size
    records = rows.to_pylist()
    images = fetch_images((r["source"], r["member"]) for r in records)
    failed, reencoded = [], 0
    with ShardWriter(
        out_dir=Path(out_dir), shard_id=shard_id, index_schema=index_schema(levels), image_ext="jpg"
    ) as writer:
        for row in records:
            data = images.get((row["source"], row["member"]))
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
    return {"shard_id": shard_id, "samples": len(records) - len(failed), "failed": failed}
