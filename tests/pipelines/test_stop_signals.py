"""SIGTERM to the driver, or Ctrl-C (SIGINT to the terminal's process group), while `humans1b curate score` runs: the
local Ray head stops cleanly, only whole parts (and `.partial` files) are on disk, the command exits 143 / 130 with
one line and no C++ abort stack, and the same command run again finishes the rest."""

import json
import os
import signal
import subprocess
import time

import psutil
import pyarrow.parquet as pq
import pytest

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus


def _group(pgid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


@pytest.mark.parametrize(
    ("signum", "to_group", "status"),
    [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)],
    ids=["sigterm-to-driver", "ctrl-c-to-group"],
)
def test_a_stopped_run_exits_cleanly_and_resumes(signum, to_group, status, tmp_path, job_env, score_job_command):
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig())
    n_shards = -(-len(corpus.entries) // 2)
    out, scratch = tmp_path / "out", job_env["TMPDIR"]
    candidates = out / "candidates"
    command = score_job_command(corpus.images_dir, out)
    with (tmp_path / "stderr").open("w") as stderr:
        job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr, env=job_env)
    deadline = time.monotonic() + 300
    while len(list(candidates.glob("*.done.json"))) < 2:
        assert job.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
        assert time.monotonic() < deadline, "the job never finished two shards"
        time.sleep(0.05)
    if to_group:
        os.killpg(job.pid, signum)
    else:
        os.kill(job.pid, signum)
    assert job.wait(timeout=120) == status

    text = (tmp_path / "stderr").read_text()
    assert "Traceback" not in text and "*** SIG" not in text, text[-3000:]
    name = signal.Signals(signum).name
    last = text.strip().splitlines()[-1]
    assert last == f"humans1b curate: stopped by {name}; finished work is kept: run the same command to resume"
    # The head it started is gone, with its temp dir: nothing of the job's process group is left.
    assert psutil.wait_procs(_group(job.pid), timeout=30)[1] == []
    assert [name for name in os.listdir(scratch) if name.startswith("ray-")] == []
    # Only whole parts: each parquet has its marker; anything else is a .partial file.
    names = sorted(p.name for p in candidates.iterdir())
    parts = [n for n in names if n.endswith(".parquet")]
    assert [n for n in names if n not in parts and not n.endswith((".done.json", ".partial"))] == []
    assert {n.removesuffix(".parquet") for n in parts} == {
        n.removesuffix(".done.json") for n in names if n.endswith(".done.json")
    }
    stopped_at = len(parts)
    assert 2 <= stopped_at < n_shards

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=job_env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = [row for p in sorted(candidates.glob("part-*.parquet")) for row in pq.read_table(p).to_pylist()]
    assert len(rows) == len({row["key"] for row in rows}) == len(corpus.entries)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["last_run"]["shards_scored"] == n_shards - stopped_at
