import argparse
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from common.schemas import SHARD_BASE_FIELDS
from curation.sample_corpus import (
    MANIFEST_SCHEMA,
    NEAR_DUPLICATE,
    ORIGINAL,
    PHOTOS,
    RAW_INDEX_SCHEMA,
    SampleCorpus,
    SampleCorpusConfig,
    build_sample_corpus,
)
from pipelines.commands import sample_data

SAMPLES_PER_SHARD = 16
EXPECTED_REASONS = {
    "cmyk_jpeg": None,
    "png_16bit": None,
    "palette_transparency_png": None,
    "la_png": None,
    "animated_gif": None,
    "exif_rotated_jpeg": None,
    "empty_file": "empty_file",
    "truncated_jpeg": "truncated",
    "text_as_jpg": "not_an_image",
    "decompression_bomb_png": "too_large",
    "corrupt_png": "decode_error",
    "one_pixel": "too_small",
    "extreme_aspect_ratio": "bad_aspect_ratio",
}
NEAR_DUPLICATE_VARIANTS = {"jpeg_q30", "jpeg_q60", "jpeg_q90", "resize", "crop", "color_jitter"}
# Files whose bytes depend on the seed, and files that never do.
SEEDED_KINDS = {"png_16bit", "palette_transparency_png", "truncated_jpeg", "extreme_aspect_ratio"}
FIXED_KINDS = set(EXPECTED_REASONS) - SEEDED_KINDS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SampleCorpus:
    return build_sample_corpus(
        tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(seed=0, samples_per_shard=SAMPLES_PER_SHARD)
    )


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory) -> SampleCorpus:
    return build_sample_corpus(tmp_path_factory.mktemp("other"), SampleCorpusConfig(seed=1, samples_per_shard=8))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def by_kind(corpus: SampleCorpus, kind: str) -> list:
    return [e for e in corpus.entries if e.kind == kind]


def thumbnail(path: Path) -> np.ndarray:
    """8 x 8 grey averages: coarse enough that a small crop or colour shift barely moves them."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BOX), dtype=np.float32)


def test_same_seed_gives_byte_identical_files_even_over_a_previous_corpus(corpus, tmp_path):
    # First a different corpus through the command line, then the fixture's config into the same directory.
    parser = argparse.ArgumentParser()
    sample_data.add_arguments(parser)
    assert sample_data.run(parser.parse_args([str(tmp_path), "--seed", "1", "--samples-per-shard", "8"])) == 0
    assert len(list((tmp_path / "tars").glob("*.tar"))) == 6
    again = build_sample_corpus(tmp_path, SampleCorpusConfig(seed=0, samples_per_shard=SAMPLES_PER_SHARD))
    expected, actual = tree(corpus.root), tree(again.root)
    assert sorted(actual) == sorted(expected)  # the 8-per-shard tars of the first build are gone
    assert [name for name in expected if name.startswith("tars/")] == [
        f"tars/{shard}{suffix}" for shard in corpus.shards for suffix in (".parquet", ".tar", "_stats.json")
    ]
    assert actual == expected


def test_other_seed_changes_exactly_the_seeded_files(corpus, other_seed):
    sha0 = {e.name: e.sha256 for e in corpus.entries}
    sha1 = {e.name: e.sha256 for e in other_seed.entries}
    for entry in corpus.entries:
        if entry.kind == ORIGINAL or entry.kind in FIXED_KINDS:
            assert sha1[entry.name] == entry.sha256, entry.name
        if entry.kind in SEEDED_KINDS:
            assert sha1[entry.name] != entry.sha256, entry.name
    common = {e.origin for e in by_kind(corpus, NEAR_DUPLICATE)} & {
        e.origin for e in by_kind(other_seed, NEAR_DUPLICATE)
    }
    for origin in common:
        for variant in NEAR_DUPLICATE_VARIANTS:
            name = f"near_duplicates/{origin}/{variant}"
            # A re-encode is a function of the original; the edits draw from the seed.
            assert (sha0[name] == sha1[name]) == variant.startswith("jpeg_q"), name
    assert {e.sha256 for e in by_kind(corpus, NEAR_DUPLICATE)} != {
        e.sha256 for e in by_kind(other_seed, NEAR_DUPLICATE)
    }


def test_manifest_lists_every_file_with_its_expectation(corpus):
    table = pq.read_table(corpus.manifest_path)
    assert table.schema.equals(MANIFEST_SCHEMA)
    rows = table.to_pylist()
    assert rows == [vars(e) for e in corpus.entries]
    assert sorted(r["path"] for r in rows) == sorted(tree(corpus.images_dir))  # no file missing, none extra
    assert len({r["name"] for r in rows}) == len({r["key"] for r in rows}) == len(rows)
    for row in rows:
        data = (corpus.images_dir / row["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (row["num_bytes"], row["sha256"])
        if row["expected_reason"] is None:
            assert row["width"] > 0 and row["height"] > 0, row["name"]

    originals = by_kind(corpus, ORIGINAL)
    assert sorted(e.origin for e in originals) == sorted(PHOTOS)
    assert corpus.entry("originals/chelsea").expected_reason == "too_small"  # 451 x 300 as shipped
    assert {e.name: e.expected_reason for e in originals if e.expected_reason} == {"originals/chelsea": "too_small"}
    assert {e.kind: e.expected_reason for e in corpus.entries if e.kind not in (ORIGINAL, NEAR_DUPLICATE)} == (
        EXPECTED_REASONS
    )
    assert len(corpus.entries) == len(PHOTOS) + 4 * len(NEAR_DUPLICATE_VARIANTS) + len(EXPECTED_REASONS)


def test_originals_are_the_packaged_photos(corpus):
    bus = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets" / "bus.jpg"
    assert (corpus.images_dir / "originals/bus.jpg").read_bytes() == bus.read_bytes()  # JPEG bytes kept as they are
    for entry in by_kind(corpus, ORIGINAL):
        with Image.open(corpus.images_dir / entry.path) as image:
            assert image.format == "JPEG"
            assert image.size == (entry.width, entry.height)
    with Image.open(corpus.images_dir / "originals/astronaut.jpg") as image:
        assert image.size == (512, 512) and image.mode == "RGB"


def test_near_duplicates_resemble_their_origin_more_than_any_other_original(corpus):
    near = by_kind(corpus, NEAR_DUPLICATE)
    origins = {e.origin for e in near}
    assert len(origins) == 4
    originals = {e.origin: thumbnail(corpus.images_dir / e.path) for e in by_kind(corpus, ORIGINAL)}
    for origin in origins:
        assert {e.name.rsplit("/", 1)[1] for e in near if e.origin == origin} == NEAR_DUPLICATE_VARIANTS
        assert corpus.entry(f"originals/{origin}").expected_reason is None
    for entry in near:
        assert entry.expected_reason is None
        copy = thumbnail(corpus.images_dir / entry.path)
        (nearest, origin), (second, _) = sorted((float(np.abs(copy - o).mean()), n) for n, o in originals.items())[:2]
        assert origin == entry.origin, entry.name
        assert nearest < 0.5 * second, (entry.name, nearest, second)


def test_tars_hold_the_same_bytes_as_the_folder(corpus):
    tars = sorted(str(p) for p in corpus.tars_dir.glob("*.tar"))
    assert [Path(t).stem for t in tars] == list(corpus.shards) == ["00000", "00001", "00002"]
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [e.key for e in corpus.entries]
    for sample, entry in zip(samples, corpus.entries, strict=True):
        ext = entry.path.rsplit(".", 1)[1]
        assert set(sample) - {"__key__", "__url__", "__local_path__"} == {ext, "json"}
        assert sample[ext] == (corpus.images_dir / entry.path).read_bytes(), entry.name
        assert Path(sample["__url__"]).stem == entry.shard
        meta = json.loads(sample["json"])
        assert meta["key"] == entry.key
        assert meta["url"] == f"https://sample-corpus.invalid/{entry.path}"
        assert (meta["width"], meta["height"]) == (entry.width, entry.height)


def test_shard_index_and_stats(corpus):
    assert [f.name for f in RAW_INDEX_SCHEMA][: len(SHARD_BASE_FIELDS)] == [f.name for f in SHARD_BASE_FIELDS]
    for shard in corpus.shards:
        index = pq.read_table(corpus.tars_dir / f"{shard}.parquet")
        assert index.schema.equals(RAW_INDEX_SCHEMA)
        entries = [e for e in corpus.entries if e.shard == shard]
        assert 0 < len(entries) <= SAMPLES_PER_SHARD
        rows = index.to_pylist()
        assert [r["key"] for r in rows] == [e.key for e in entries]
        assert {r["status"] for r in rows} == {"success"}
        assert [(r["width"], r["height"]) for r in rows] == [(e.width, e.height) for e in entries]
        offsets = [r["tar_offset"] for r in rows]
        assert offsets == sorted(offsets) and offsets[0] == 0
        stats = json.loads((corpus.tars_dir / f"{shard}_stats.json").read_text())
        assert stats["count"] == len(entries)
    assert sum(1 for e in corpus.entries if e.shard == corpus.shards[0]) == SAMPLES_PER_SHARD


def test_refuses_a_directory_that_is_not_a_corpus(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.jpg").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="not a sample corpus"):
        build_sample_corpus(tmp_path, SampleCorpusConfig())
    assert (tmp_path / "images" / "mine.jpg").read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SampleCorpusConfig(samples_per_shard=0), "samples_per_shard"),
        (SampleCorpusConfig(near_duplicate_origins=100), "near_duplicate_origins"),
    ],
)
def test_rejects_bad_config(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        build_sample_corpus(tmp_path, config)
    assert not (tmp_path / "images").exists()
