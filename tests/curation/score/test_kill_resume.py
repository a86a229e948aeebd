"""A score job killed with SIGKILL mid-run, then run again, ends with exactly the rows of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus

REPO = Path(__file__).resolve().parents[3]
STAGES = ("decode", "phash", "detect", "head_pose", "clip", "aesthetic", "zero_shot")


def score_command(images: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "curate",
        "score",
        "--config",
        str(REPO / "configs/curation/demo.yaml"),
        f"input=[{images}]",
        f"output={out}",
        "files_per_shard=2",
        "num_cpus=2",
        # One row per batch: shards then finish one at a time, so there is a wide window to kill the job mid-run.
        *(f"stages.{stage}.resources.batch_size=1" for stage in STAGES),
    ]


def table(out: Path) -> list[dict]:
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    return [row for p in parts for row in pq.read_table(p).to_pylist()]


def test_killed_job_resumes_without_loss_or_duplicates(tmp_path):
    # The killed head cannot clean up its Ray temp dir: give the jobs a short TMPDIR that the test removes.
    scratch = tempfile.mkdtemp(prefix="h1b-kill-", dir="/tmp")
    try:
        _kill_and_resume(tmp_path, {**os.environ, "TMPDIR": scratch})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _kill_and_resume(tmp_path: Path, env: dict[str, str]) -> None:
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig())
    n_shards = -(-len(corpus.entries) // 2)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    job = subprocess.Popen(
        score_command(corpus.images_dir, killed),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(list((killed / "candidates").glob("*.done.json"))) < 2 and time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before it could be killed"
        time.sleep(0.2)
    group = [p for p in psutil.process_iter() if _in_group(p, job.pid)]
    os.killpg(job.pid, signal.SIGKILL)  # the driver and the Ray head it started, all at once
    job.wait(timeout=30)
    psutil.wait_procs(group, timeout=30)
    done_at_kill = len(list((killed / "candidates").glob("*.done.json")))
    assert 2 <= done_at_kill < n_shards

    resumed = subprocess.run(
        score_command(corpus.images_dir, killed), capture_output=True, text=True, timeout=600, env=env
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = subprocess.run(
        score_command(corpus.images_dir, clean), capture_output=True, text=True, timeout=600, env=env
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    after, expected = table(killed), table(clean)
    assert len(after) == len({r["key"] for r in after}) == len(corpus.entries)
    assert after == expected  # same keys, same values, in the same files
    assert sorted(p.name for p in (killed / "candidates").iterdir()) == sorted(
        p.name for p in (clean / "candidates").iterdir()
    )


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except (ProcessLookupError, psutil.NoSuchProcess):
        return False
