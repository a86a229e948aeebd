"""The whole curation as a real Ray job: `ray job submit --working-dir .` against a local head on 127.0.0.1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from pipelines.commands.ray_local import client_env, read_state

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pipelines.cli"]


def test_submitted_curate_job_runs_every_phase(tmp_path):
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig())
    state_dir, out = tmp_path / "head", tmp_path / "out"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    start = subprocess.run(
        [*CLI, "ray-local", "start", "--state-dir", str(state_dir), "--num-cpus", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        state = read_state(state_dir)
        job = subprocess.run(
            [
                str(Path(sys.executable).parent / "ray"),
                "job",
                "submit",
                "--address",
                state.dashboard_url,
                "--working-dir",
                str(REPO),
                "--",
                "python",
                "-m",
                "pipelines.curate_job",
                "--config",
                "configs/curation/demo.yaml",
                f"input=[{corpus.images_dir}]",
                f"output={out}",
            ],
            env={**env, **client_env(state)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        assert "succeeded" in job.stdout
        assert "score: 47 rows in" in job.stdout
        assert "select: " in job.stdout and "write: " in job.stdout and "report: " in job.stdout
    finally:
        subprocess.run([*CLI, "ray-local", "stop", "--state-dir", str(state_dir)], env=env, capture_output=True)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_in"] == len(corpus.entries)
    rows = sum(pq.read_metadata(p).num_rows for p in (out / "candidates").glob("part-*.parquet"))
    assert rows == len(corpus.entries)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"] == pq.read_table(out / "selection.parquet").num_rows > 0
    assert (out / "report" / "index.html").exists()
    assert list(home.iterdir()) == []  # neither the head nor the client wrote into HOME
