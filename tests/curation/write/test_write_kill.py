"""A write job killed with SIGKILL mid-run, then run again, leaves shards byte-identical to an uninterrupted run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[3]


def write_command(out: Path) -> list[str]:
    config = str(REPO / "configs/curation/demo.yaml")
    cli = [sys.executable, "-m", "pipelines.cli", "curate", "write", "--config", config]
    return [*cli, f"output={out}", "write.shard_size=2", "write.num_cpus=1", "num_cpus=2"]


def test_killed_write_resumes_to_byte_identical_shards(tmp_path, corpus, make_selection, kill_when, job_env):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir()
    # Many small shards (each image under several keys) so the kill lands well inside the run.
    pq.write_table(make_selection([str(corpus.images_dir)], copies=8), killed / "selection.parquet")
    shutil.copytree(killed, clean)
    n_shards = -(-pq.read_metadata(killed / "selection.parquet").num_rows // 2)

    def done() -> int:
        return len(list((killed / "shards").glob("*_stats.json")))

    kill_when(write_command(killed), lambda: done() >= 3, env=job_env)
    assert 3 <= done() < n_shards

    for out in (killed, clean):
        run = subprocess.run(write_command(out), capture_output=True, text=True, timeout=600, env=job_env)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"in {n_shards} shards" in run.stdout

    def files(out: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}

    assert files(killed) == files(clean)
    assert len(files(killed)) == 3 * n_shards
