"""The end-to-end demo on the sample corpus: build it, validate every image on Ray Data, write the kept ones as
WebDataset shards, and check the funnel. It grows as curation phases land."""

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import ray
import webdataset as wds
from omegaconf import DictConfig

from common.config import save_resolved_config, to_object
from common.image_decode import DecodeConfig, decode_image
from common.keys import sample_key
from common.ray_bootstrap import ray_session
from common.schemas import SHARD_INDEX_SCHEMA
from common.shard_writer import ShardWriter
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    output: str = ".demo"
    address: str | None = None  # a running Ray cluster; None starts a private local one
    num_cpus: int | None = None
    corpus: SampleCorpusConfig = field(default_factory=SampleCorpusConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    samples_per_shard: int = 8
    batch_size: int = 8
    jpeg_quality: int = 95  # only for sources that were not JPEG; JPEG bytes are kept as they are


def validate_batch(batch: pa.Table, decode: DecodeConfig) -> pa.Table:
    """Decode every image of a batch; never drops a row, a bad file gets its reason."""
    sources = [f"file://{path}" for path in batch["path"].to_pylist()]
    keys, widths, heights, formats, reasons = [], [], [], [], []
    for source, data in zip(sources, batch["bytes"].to_pylist(), strict=True):
        decoded = decode_image(data, decode)
        keys.append(sample_key(source))
        widths.append(decoded.width)
        heights.append(decoded.height)
        formats.append(decoded.format)
        reasons.append(decoded.reason)
    return pa.table(
        {
            "key": keys,
            "source": pa.array(sources, pa.string()),
            "width": pa.array(widths, pa.int32()),
            "height": pa.array(heights, pa.int32()),
            "format": pa.array(formats, pa.string()),
            "reject_reason": pa.array(reasons, pa.string()),
            "bytes": batch["bytes"],
        }
    )


def funnel(table: pa.Table) -> dict:
    counts = table.group_by("reject_reason").aggregate([("key", "count")]).to_pylist()
    rejected = {row["reject_reason"]: row["key_count"] for row in counts if row["reject_reason"] is not None}
    kept = table.num_rows - sum(rejected.values())
    assert kept + sum(rejected.values()) == table.num_rows  # funnel invariant
    return {"rows_in": table.num_rows, "kept": kept, "rejected": dict(sorted(rejected.items()))}


def as_jpeg(data: bytes, fmt: str, quality: int) -> bytes:
    if fmt == "JPEG":
        return data
    decoded = decode_image(data, DecodeConfig(min_short_side=1, max_aspect_ratio=float("inf")))
    out = io.BytesIO()
    decoded.image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def write_shards(kept: pa.Table, out_dir: Path, cfg: DemoConfig) -> int:
    rows = kept.sort_by("key").to_pylist()
    for shard_id, start in enumerate(range(0, len(rows), cfg.samples_per_shard)):
        with ShardWriter(out_dir=out_dir, shard_id=shard_id, index_schema=SHARD_INDEX_SCHEMA, image_ext="jpg") as w:
            for row in rows[start : start + cfg.samples_per_shard]:
                meta = {k: row[k] for k in ("key", "source", "width", "height")}
                jpg = as_jpeg(row["bytes"], row["format"], cfg.jpeg_quality)
                w.write(
                    key=row["key"], files={"jpg": jpg, "json": meta}, index={k: meta[k] for k in meta if k != "key"}
                )
    return -(-len(rows) // cfg.samples_per_shard)


def run_demo(cfg_node: DictConfig) -> dict:
    cfg: DemoConfig = to_object(cfg_node)
    out = Path(cfg.output)
    save_resolved_config(cfg_node, out)
    corpus = build_sample_corpus(out / "raw", cfg.corpus)
    log.info("sample corpus: %s", corpus)
    with ray_session(cfg.address, num_cpus=cfg.num_cpus):
        ds = ray.data.read_binary_files(str((out / "raw" / "images").resolve()), include_paths=True)
        ds = ds.map_batches(
            validate_batch, fn_kwargs={"decode": cfg.decode}, batch_format="pyarrow", batch_size=cfg.batch_size
        )
        table = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    stats = funnel(table)
    kept = table.filter(pc.is_null(table["reject_reason"]))
    stats["shards"] = write_shards(kept, out / "shards", cfg)
    read_back = sum(
        1 for _ in wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False)
    )
    if read_back != stats["kept"]:
        raise RuntimeError(f"shards hold {read_back} samples, expected {stats['kept']}")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
