"""Each phase (score, select, write) SIGKILLed at three points, then run again: the final shards are byte-identical to
an uninterrupted run's. The three kills of a phase are chained (kill, resume and kill again further on, ...), so
every later kill also hits a resumed run; one clean run serves all three phases."""

import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus

REPO = Path(__file__).resolve().parents[3]
MODEL_STAGES = ("detect", "head_pose", "clip", "aesthetic", "zero_shot")
FILES_PER_SHARD = 4
# Pauses `curate select` at a step with SIGSTOP, for the test to SIGKILL it there: select takes well under a
# second, too fast to catch by polling. argv: step, "after" (its artifact in place) or "mid" (only its .partial).
SELECT_PAUSER = """
import os, signal, sys
import curation.select.runner as runner
from pipelines.cli import main

step, when = sys.argv[1], sys.argv[2]
run_step, finish = runner._run_step, runner.finish_step

def pausing_run_step(name, *args):
    result = run_step(name, *args)
    if name == step and when == "mid":  # the step's files are written, its _done.json is not
        os.kill(os.getpid(), signal.SIGSTOP)
    return result

def pausing_finish(folder, *args):
    done = finish(folder, *args)
    if folder.name == step:
        os.kill(os.getpid(), signal.SIGSTOP)
    return done

runner._run_step, runner.finish_step = pausing_run_step, pausing_finish
sys.exit(main(sys.argv[3:]))
"""
# Pauses `curate write` (the driver) with SIGSTOP once N shards of the output are complete: a stopped driver submits
# no more tasks, so at most the tasks in flight (2 on 2 CPUs) finish before the kill. argv: N, the shards folder.
WRITE_PAUSER = """
import os, signal, sys
from pathlib import Path
import ray
from pipelines.cli import main

stop_at, shards = int(sys.argv[1]), Path(sys.argv[2])
wait = ray.wait

def pausing_wait(*args, **kwargs):
    ready, pending = wait(*args, **kwargs)
    if len(list(shards.glob("*_stats.json"))) >= stop_at:
        os.kill(os.getpid(), signal.SIGSTOP)
    return ready, pending

ray.wait = pausing_wait
sys.exit(main(sys.argv[3:]))
"""
# Pauses `curate score` (the driver, which alone starts the tasks writing the parts and markers) with SIGSTOP once N
# markers are written: polling from outside overshoots when the last shards finish close together. argv: N.
SCORE_PAUSER = """
import os, signal, sys
import curation.score.sink as sink
from pipelines.cli import main

stop_at = int(sys.argv[1])
completed = sink.CandidateSink._completed

def pausing_completed(self, shard_id):
    completed(self, shard_id)
    if len(list(self.out_dir.glob("*.done.json"))) >= stop_at:
        os.kill(os.getpid(), signal.SIGSTOP)

sink.CandidateSink._completed = pausing_completed
sys.exit(main(sys.argv[2:]))
"""


def cli(out: Path, *words: str) -> list[str]:
    config = str(REPO / "configs/curation/demo.yaml")
    return [sys.executable, "-m", "pipelines.cli", "curate", *words, "--config", config, *overrides(out)]


def overrides(out: Path) -> list[str]:
    corpus = out.parent / "corpus" / "images"
    return [
        f"input=[{corpus}]",
        f"output={out}",
        "num_cpus=2",
        f"files_per_shard={FILES_PER_SHARD}",
        # Every balanced-sampling survivor kept, one image per output shard: many shards to kill between.
        "select.sampling.fraction=1.0",
        "write.shard_size=1",
        # One row per model batch: shards finish one at a time, so each kill lands between two of them.
        *(f"stages.{name}.resources.batch_size=1" for name in MODEL_STAGES),
    ]


def run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}


def count(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern)))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kill_points")
    build_sample_corpus(root / "corpus", SampleCorpusConfig())
    out = root / "clean"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(root))
        run(cli(out), env=None)
    assert len(shards(out)) >= 3 * 12  # tar + parquet + stats per shard: 14 on the sample corpus
    return out


def test_score_killed_at_three_points(clean, kill_when, job_env):
    out = clean.parent / "score_killed"
    n_shards = count(clean / "candidates", "*.done.json")
    for markers in (2, 5, 8):  # kill after the 2nd, the 5th and the 8th completed input shard
        pauser = [sys.executable, "-c", SCORE_PAUSER, str(markers), *cli(out, "score")[3:]]
        kill_when(pauser, lambda: _stopped(out), env=job_env)
        assert markers <= count(out / "candidates", "*.done.json") < n_shards
    run(cli(out), job_env)
    assert shards(out) == shards(clean)


def _stopped(out: Path) -> bool:
    for process in psutil.process_iter():
        try:
            if f"output={out}" in process.cmdline() and process.status() == psutil.STATUS_STOPPED:
                return True
        except psutil.Error:
            continue
    return False


def test_select_killed_at_three_points(clean, kill_when, job_env):
    out = clean.parent / "select_killed"
    shutil.copytree(clean / "candidates", out / "candidates")
    shutil.copy(clean / "stats.json", out / "stats.json")
    select = out / "select"
    for step, when, done in (
        ("phash_dedup", "after", {"phash_dedup"}),
        ("clustering", "mid", {"phash_dedup", "semdedup"}),
        ("sampling", "after", {"phash_dedup", "semdedup", "clustering", "sampling"}),
    ):
        pauser = [sys.executable, "-c", SELECT_PAUSER, step, when, *cli(out, "select")[3:]]
        kill_when(pauser, lambda: _stopped(out), env=job_env)
        assert {p.parent.name for p in select.glob("*/_done.json")} == done
        assert (select / step).is_dir() and not (out / "selection.parquet").exists()
    run(cli(out), job_env)
    assert shards(out) == shards(clean)


def test_write_killed_at_three_points(clean, kill_when, job_env):
    out = clean.parent / "write_killed"
    for name in ("candidates", "select", "selection.parquet"):
        shutil.copytree(clean / name, out / name)
    for name in ("stats.json", "select_stats.json"):
        shutil.copy(clean / name, out / name)
    n_shards = count(clean / "shards", "*_stats.json")
    for done in (2, 6, 10):
        pauser = [sys.executable, "-c", WRITE_PAUSER, str(done), str(out / "shards"), *cli(out, "write")[3:]]
        kill_when(pauser, lambda: _stopped(out), env=job_env)
        assert done <= count(out / "shards", "*_stats.json") < n_shards
    run(cli(out, "write"), job_env)
    assert shards(out) == shards(clean)
