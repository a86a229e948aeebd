"""A score job killed with SIGKILL mid-run, then run again, ends with exactly the rows of an uninterrupted run."""

import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus


def table(out: Path) -> list[dict]:
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    return [row for p in parts for row in pq.read_table(p).to_pylist()]


def test_killed_job_resumes_without_loss_or_duplicates(tmp_path, kill_when, job_env, score_job_command):
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig())
    n_shards = -(-len(corpus.entries) // 2)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    def markers() -> int:
        return len(list((killed / "candidates").glob("*.done.json")))

    kill_when(score_job_command(corpus.images_dir, killed), lambda: markers() >= 2, env=job_env)
    assert 2 <= markers() < n_shards

    for out in (killed, clean):
        run = subprocess.run(
            score_job_command(corpus.images_dir, out), capture_output=True, text=True, timeout=600, env=job_env
        )
        assert run.returncode == 0, run.stderr[-3000:]

    after, expected = table(killed), table(clean)
    assert len(after) == len({r["key"] for r in after}) == len(corpus.entries)
    assert after == expected  # same keys, same values, in the same files
    assert sorted(p.name for p in (killed / "candidates").iterdir()) == sorted(
        p.name for p in (clean / "candidates").iterdir()
    )
