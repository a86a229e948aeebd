"""The write phase: shards hold exactly the selection, read back with webdataset, and resume byte-identically."""

import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from common.image_decode import DecodeConfig
from curation.write.config import WriteConfig
from curation.write.runner import run_write


def shard_bytes(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}


def test_shards_hold_exactly_the_selection(run_dir, ray_local):
    selection = pq.read_table(run_dir / "selection.parquet")
    result = run_write(run_dir, WriteConfig(shard_size=7), DecodeConfig(), config_hash="abc")
    n = selection.num_rows
    assert [s["samples"] for s in result.manifest["shards"]] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    assert result.manifest["samples"] == n and result.manifest["failed"] == []
    assert result.manifest["config_hash"] == "abc"
    assert json.loads((run_dir / "manifest.json").read_text()) == result.manifest

    tars = sorted(str(p) for p in (run_dir / "shards").glob("*.tar"))
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert [s["__key__"] for s in samples] == sorted(selection["key"].to_pylist())
    by_key = {r["key"]: r for r in selection.to_pylist()}
    for sample in samples:
        row = by_key[sample["__key__"]]
        meta = json.loads(sample["json"])
        assert meta["cluster_ids"] == row["cluster_ids"] and meta["persons"] == row["persons"]
        assert meta["head_pose"] == row["head_pose"] and meta["aesthetic"] == pytest.approx(row["aesthetic"])
        with Image.open(io.BytesIO(sample["jpg"])) as im:
            assert im.format == "JPEG" and im.size == (row["width"], row["height"])
        original = Path(row["source"]).read_bytes()
        if original.startswith(b"\xff\xd8\xff") and not _rotated(original):
            assert sample["jpg"] == original  # a plain JPEG is stored as it came
    index = pq.read_table(sorted((run_dir / "shards").glob("*.parquet"))).to_pylist()
    assert [r["key"] for r in index] == [s["__key__"] for s in samples]


def _rotated(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as im:
        return im.getexif().get(0x0112, 1) != 1


def test_non_jpeg_sources_are_reencoded(run_dir, ray_local):
    run_write(run_dir, WriteConfig(shard_size=100), DecodeConfig(), config_hash="x")
    formats = {}
    for sample in wds.WebDataset(str(run_dir / "shards" / "00000.tar"), shardshuffle=False):
        formats[sample["__key__"]] = Image.open(io.BytesIO(sample["jpg"])).format
    assert set(formats.values()) == {"JPEG"}
    stats = json.loads((run_dir / "shards" / "00000_stats.json").read_text())
    assert stats["reencoded"] > 0  # the corpus has PNG, WebP, GIF, TIFF and EXIF-rotated files


def test_interrupted_writes_resume_to_byte_identical_shards(run_dir, ray_local, tmp_path):
    cfg = WriteConfig(shard_size=5)
    run_write(run_dir, cfg, DecodeConfig(), config_hash="h")
    reference = shard_bytes(run_dir)
    shards = run_dir / "shards"
    # What a kill can leave: a shard with no marker and temp files, one with a truncated tar, one missing entirely.
    (shards / "00001_stats.json").unlink()
    (shards / "00001.tar.partial").write_bytes(b"half a tar")
    (shards / "00002_stats.json").unlink()
    (shards / "00002.tar").write_bytes(reference["00002.tar"][:1000])
    for suffix in (".tar", ".parquet", "_stats.json"):
        (shards / f"00003{suffix}").unlink()
    again = run_write(run_dir, cfg, DecodeConfig(), config_hash="h")
    assert again.shards_done_now == 3
    (shards / "00001.tar.partial").unlink(missing_ok=True)
    assert shard_bytes(run_dir) == reference
    assert run_write(run_dir, cfg, DecodeConfig(), config_hash="h").shards_done_now == 0


def test_shards_of_another_selection_are_refused(run_dir, ray_local):
    run_write(run_dir, WriteConfig(shard_size=5), DecodeConfig(), config_hash="h")
    with pytest.raises(RuntimeError, match="another selection"):
        run_write(run_dir, WriteConfig(shard_size=6), DecodeConfig(), config_hash="h")


def test_rows_whose_bytes_are_gone_are_listed_not_lost(run_dir, ray_local, tmp_path):
    selection = pq.read_table(run_dir / "selection.parquet")
    victim = selection["source"][0].as_py()
    moved = tmp_path / "moved"
    shutil.move(victim, moved)
    result = run_write(run_dir, WriteConfig(shard_size=100), DecodeConfig(), config_hash="h")
    gone = [r["key"] for r in selection.to_pylist() if r["source"] == victim]
    assert [f["key"] for f in result.manifest["failed"]] == gone
    assert {f["reason"] for f in result.manifest["failed"]} == {"read_error"}
    assert result.manifest["samples"] + len(gone) == selection.num_rows
