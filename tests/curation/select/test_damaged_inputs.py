"""Select trusts nothing it cannot check: candidate parts are compared with their markers' digests as they are read,
and a step whose files are cut off is redone."""

import hashlib
import json
import logging

import pyarrow.parquet as pq
import pytest

from curation.select.candidates import CandidatesNotScoredError
from curation.select.runner import run_select
from tests.curation.select.test_select_runner import config, mark_scored, write_candidates

pytestmark = pytest.mark.usefixtures("ray_local")


def split_into_parts(run, n: int) -> None:
    """The planted candidates as `n` parts, each with the marker the score phase writes, as a score run of `n`
    shards leaves them."""
    whole = run / "candidates" / "part-00000.parquet"
    table = pq.read_table(whole)
    step = -(-table.num_rows // n)
    for i in range(n):
        part = run / "candidates" / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(i * step, step), part)
        mark_scored(part)
    (run / "stats.json").write_text(json.dumps({"shards": n}))


def test_parts_that_do_not_match_their_markers_are_named_and_marked_for_redo(tmp_path, caplog):
    run = tmp_path / "run"
    write_candidates(run)
    split_into_parts(run, 4)
    candidates = run / "candidates"
    flipped = candidates / "part-00001.parquet"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    recorded = json.loads((candidates / "part-00001.done.json").read_text())["files"][flipped.name]
    old = json.loads((candidates / "part-00002.done.json").read_text())
    del old["files"]  # a marker written before markers recorded digests
    (candidates / "part-00002.done.json").write_text(json.dumps(old))
    (candidates / "part-00003.parquet").unlink()
    (candidates / "part-00003.done.json").unlink()  # both files gone: only stats.json's shard count knows of it

    with (
        caplog.at_level(logging.WARNING, logger="curation.select.candidates"),
        pytest.raises(CandidatesNotScoredError) as err,
    ):
        run_select(run, config(), seed=0)
    found = hashlib.sha256(bytes(data)).hexdigest()
    problems = [
        f"{flipped} does not match its completion marker ({len(data)} bytes, sha256 {found[:16]}; recorded "
        f"{recorded['bytes']} bytes, sha256 {recorded['sha256'][:16]})",
        f"{candidates / 'part-00002.done.json'} records no digest of part-00002.parquet (written by an older version)",
        f"{candidates / 'part-00003.parquet'} has no completion marker (its shard is not scored)",
    ]
    assert str(err.value) == "; ".join(problems) + (
        ": their shards are marked for redo; run `humans1b curate score` (or `humans1b curate`) with the same config "
        "and output=, then select again"
    )
    assert [r.getMessage() for r in caplog.records if r.name == "curation.select.candidates"] == problems
    assert sorted(p.name for p in candidates.iterdir()) == [
        "part-00000.done.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
    ]  # fmt: skip
    assert not (run / "select" / "phash_dedup").exists() and not (run / "selection.parquet").exists()
    with pytest.raises(CandidatesNotScoredError, match=r"part-00001\.parquet has no completion marker"):
        run_select(run, config(), seed=0)  # still refused until score has redone them


def test_a_cut_off_step_file_is_noticed_and_its_step_redone(tmp_path, caplog):
    run = tmp_path / "run"
    write_candidates(run)
    split_into_parts(run, 3)
    run_select(run, config(), seed=0)
    selection = pq.read_table(run / "selection.parquet").sort_by("key")
    rejected = pq.read_table(run / "select" / "rejected.parquet").sort_by("key")
    clustering = run / "select" / "clustering" / "part-00001.parquet"
    clustering.write_bytes(clustering.read_bytes()[: clustering.stat().st_size // 2])

    with caplog.at_level(logging.WARNING, logger="curation.select.step_files"):
        again = run_select(run, config(), seed=0)
    assert again.steps_done_now == ["clustering"]
    (record,) = [r for r in caplog.records if r.name == "curation.select.step_files"]
    assert record.getMessage().startswith(f"{clustering} has ")
    assert record.getMessage().endswith(": the step is redone")
    assert pq.read_table(run / "selection.parquet").sort_by("key").equals(selection)
    assert pq.read_table(run / "select" / "rejected.parquet").sort_by("key").equals(rejected)
    assert run_select(run, config(), seed=0).steps_done_now == []
