"""Candidate parts damaged after their marker: resume redoes a cut-off part; select catches a changed byte by the
digest, marks the part for redo, and score then select give the clean run's result."""

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common.config import to_object
from curation.config import load_curate_config
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.score.runner import run_score
from curation.score.sink import marker_path, part_path
from curation.select.candidates import CandidatesNotScoredError
from curation.select.runner import run_select

DEMO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "curation" / "demo.yaml"


def config(images: Path, out: Path):
    return load_curate_config(DEMO_CONFIG, [f"input=[{images}]", f"output={out}", "files_per_shard=5"])


def score(images: Path, out: Path):
    return run_score(config(images, out))


def select(images: Path, out: Path):
    cfg = to_object(config(images, out))
    return run_select(out, cfg.select, seed=cfg.seed)


def files(out: Path, pattern: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "candidates").glob(pattern))}


@pytest.fixture(scope="module")
def clean(ray_local, tmp_path_factory):
    """An uninterrupted score + select run: (the input images, its run directory)."""
    corpus = build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig(samples_per_shard=16))
    out = tmp_path_factory.mktemp("clean") / "run"
    score(corpus.images_dir, out)
    select(corpus.images_dir, out)
    return corpus.images_dir, out


def copy_score_output(clean_run: Path, to: Path) -> Path:
    to.mkdir()
    shutil.copytree(clean_run / "candidates", to / "candidates")
    shutil.copy(clean_run / "stats.json", to / "stats.json")
    return to


def test_a_part_cut_off_after_its_marker_is_redone_on_resume(clean, tmp_path, caplog):
    images, clean_run = clean
    out = copy_score_output(clean_run, tmp_path / "run")
    part = part_path(out / "candidates", 2)
    size = part.stat().st_size
    part.write_bytes(part.read_bytes()[: size // 2])
    with caplog.at_level(logging.WARNING):
        resumed = score(images, out)
    assert resumed.shards_done_now == 1  # exactly that shard; the others are skipped
    damage = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith(("common", "curation"))
    ]
    assert damage == [f"{part}: expected {size} bytes, found {size // 2}: shard 00002 is redone"]
    assert files(out, "part-*.parquet") == files(clean_run, "part-*.parquet")  # byte-identical parts
    for shard_id in range(resumed.shards_total):
        again, reference = (json.loads(marker_path(d / "candidates", shard_id).read_text()) for d in (out, clean_run))
        assert (again["files"], again["funnel"], again["rows"]) == (
            reference["files"],
            reference["funnel"],
            reference["rows"],
        )
    assert resumed.stats["stages"] == json.loads((clean_run / "stats.json").read_text())["stages"]
    assert score(images, out).shards_done_now == 0


def test_a_changed_byte_is_caught_by_select_and_redone_by_score(clean, tmp_path):
    images, clean_run = clean
    out = copy_score_output(clean_run, tmp_path / "run")
    part = part_path(out / "candidates", 1)
    recorded = json.loads(marker_path(out / "candidates", 1).read_text())["files"][part.name]
    data = bytearray(part.read_bytes())
    footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[(4 + footer_start) // 2] ^= 0xFF  # mid-way through the column data: size and footer intact, digest not
    part.write_bytes(bytes(data))
    assert score(images, out).shards_done_now == 0

    with pytest.raises(CandidatesNotScoredError) as err:
        select(images, out)
    found = hashlib.sha256(bytes(data)).hexdigest()
    assert str(err.value) == (
        f"{part} does not match its completion marker ({len(data)} bytes, sha256 {found[:16]}; recorded "
        f"{recorded['bytes']} bytes, sha256 {recorded['sha256'][:16]}): its shard is marked for redo; run "
        "`humans1b curate score` (or `humans1b curate`) with the same config and output=, then select again"
    )
    assert not marker_path(out / "candidates", 1).exists()
    assert not (out / "selection.parquet").exists()

    assert score(images, out).shards_done_now == 1
    assert files(out, "part-*.parquet") == files(clean_run, "part-*.parquet")
    select(images, out)
    assert pq.read_table(out / "selection.parquet").equals(pq.read_table(clean_run / "selection.parquet"))
    for part in (clean_run / "selection.parquet").iterdir():  # written part by part, byte for byte the same
        assert (out / "selection.parquet" / part.name).read_bytes() == part.read_bytes()
