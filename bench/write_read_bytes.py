"""Bytes the write phase reads per byte it writes, streaming source tars against reading members by their ranges.

    .venv/bin/python bench/write_read_bytes.py [--tars N] [--per-tar M] [--fraction F] [--side PX] [--seed S]

Builds N uncompressed tars of M samples each (a noise JPEG of PX x PX pixels + a json member, so every image is
distinct and stored as is), reads them with the score phase's tar reader (which records each member's range), and
selects a random `fraction` of the images. The same selection is then written twice in this process, by calling
the write phase's shard task directly (no Ray, so every read happens here): once with the ranges nulled (the old
path: each source tar streamed up to its last selected member), once with them (one bounded read per member).

bytes_read is the growth of `rchar` in /proc/self/io over the write: every byte the process got from read()
syscalls, page-cache hits included (`read_bytes` counts only storage reads and is 0 on a warm cache, so it would
flatter both paths). It also counts the few hundred bytes of each /proc/self/io read. bytes_written is the size
of the files the write produced (tars, parquet indexes, stats). A warm-up write runs first, so lazy imports are
not counted.
"""

import argparse
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from common.image_decode import DecodeConfig
from common.schemas import SHARD_BASE_FIELDS, candidate_schema
from common.shard_writer import ShardWriter
from curation.readers import discover_input_shards, read_input_shard
from curation.select.candidates import META_COLUMNS
from curation.write.config import WriteConfig
from curation.write.runner import plan_digest, plan_shards
from curation.write.shard_task import write_shard

log = logging.getLogger("bench.write_read_bytes")

LEVELS = 2


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "rchar":
            return int(value)
    raise RuntimeError("/proc/self/io has no rchar line: this benchmark needs Linux")


def noise_jpeg(rng: np.random.Generator, side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def build_tars(folder: Path, tars: int, per_tar: int, side: int, rng: np.random.Generator) -> int:
    """Returns the bytes of the tars written."""
    schema = pa.schema(SHARD_BASE_FIELDS)
    for t in range(tars):
        with ShardWriter(out_dir=folder, shard_id=t, index_schema=schema) as writer:
            for i in range(per_tar):
                writer.write(key=f"{t:05d}{i:04d}", files={"jpg": noise_jpeg(rng, side), "json": {"url": f"u{i}"}})
    for index in folder.glob("*.parquet"):  # the tars alone are the input
        index.unlink()
    return sum(p.stat().st_size for p in folder.glob("*.tar"))


def selection_of(folder: Path, fraction: float, side: int, rng: np.random.Generator) -> pa.Table:
    schema = candidate_schema(8)
    fields = [schema.field(name) for name in META_COLUMNS]
    fields += [pa.field("cluster_ids", pa.list_(pa.int32(), LEVELS)), pa.field("leaf_distance", pa.float32())]
    rows = []
    for shard in discover_input_shards([str(folder)]):
        for row in read_input_shard(shard).to_pylist():
            if row["image"] is not None and rng.random() < fraction:
                keep = ("key", "source", "member", "member_offset", "member_bytes")
                rows.append({**{k: row[k] for k in keep}, "width": side, "height": side, "cluster_ids": [0, 0]})
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def without_ranges(selection: pa.Table) -> pa.Table:
    for name in ("member_offset", "member_bytes"):
        i = selection.schema.get_field_index(name)
        selection = selection.set_column(i, name, pa.nulls(selection.num_rows, pa.int64()))
    return selection


def write(selection: pa.Table, out: Path, cfg: WriteConfig) -> tuple[int, int, int]:
    """(bytes read, bytes written, samples written) of the write phase's shard tasks run here, one after another."""
    decode = DecodeConfig()
    before = rchar()
    samples = 0
    for shard_id, rows in enumerate(plan_shards(selection, cfg.shard_size)):
        samples += write_shard(str(out), shard_id, rows, cfg, decode, plan_digest(rows, cfg, decode))["samples"]
    read = rchar() - before
    return read, sum(p.stat().st_size for p in out.iterdir()), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tars", type=int, default=20)
    parser.add_argument("--per-tar", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--side", type=int, default=128, help="image side in pixels (noise JPEG, ~20 KB at 128)")
    parser.add_argument("--shard-size", type=int, default=100, help="samples per output shard")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("curation").setLevel(logging.WARNING)
    rng = np.random.default_rng(args.seed)
    cfg = WriteConfig(shard_size=args.shard_size)
    with tempfile.TemporaryDirectory(prefix="write_read_bytes") as tmp:
        root = Path(tmp)
        log.info("building %d tars of %d samples", args.tars, args.per_tar)
        input_bytes = build_tars(root / "tars", args.tars, args.per_tar, args.side, rng)
        selection = selection_of(root / "tars", args.fraction, args.side, rng)
        for name, table in (
            ("warmup_stream", without_ranges(selection.slice(0, 1))),
            ("warmup", selection.slice(0, 1)),
        ):
            write(table, root / name, cfg)
        print(f"input_tars={args.tars} input_bytes={input_bytes} selected={selection.num_rows} "
              f"of={args.tars * args.per_tar} fraction={args.fraction}")  # fmt: skip
        outputs = {}
        for path, table in (("streaming", without_ranges(selection)), ("offset", selection)):
            out = root / path
            read, written, samples = write(table, out, cfg)
            outputs[path] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
            print(f"path={path} bytes_read={read} bytes_written={written} ratio={read / written:.3f} samples={samples}")
        print(f"identical_shards={outputs['streaming'] == outputs['offset']}")


if __name__ == "__main__":
    main()
