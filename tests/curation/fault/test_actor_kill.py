"""One score run on Ray with two faults: a model actor's process SIGKILLed mid-stage, and a stage raising on one
batch. Ray restarts the actor and retries its batch; the raising batch's row gets `stage_error:phash`; every other
row ends as the manifest expects."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.cloudpickle

import curation.score.runner as score_runner
from common.keys import sample_key
from common.reasons import stage_error
from curation.config import load_curate_config
from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from curation.stages.base import StageResult
from curation.stages.phash import PhashStage

REPO = Path(__file__).resolve().parents[3]
MODEL_STAGES = ("detect", "head_pose", "clip", "aesthetic", "zero_shot")
BROKEN = "originals/bus"  # the corpus file whose phash batch raises


class BrokenPhash(PhashStage):
    """Raises on the batch holding one key: what a model or library bug does to a real stage."""

    def __init__(self, stage: PhashStage, key: str) -> None:
        self.__dict__.update(stage.__dict__)
        self.broken_key = key

    def process(self, batch: pa.Table) -> StageResult:
        if self.broken_key in batch["key"].to_pylist():
            raise RuntimeError("injected failure")
        return super().process(batch)


def _stage_actor_pids() -> list[int]:
    """Worker processes holding a stage actor: Ray titles them `ray::MapWorker(MapBatches(_StageActor))...`."""
    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "_StageActor" in " ".join(process.cmdline()):
                pids.append(process.pid)
        except psutil.Error:
            continue
    return sorted(pids)


def _gone(killed: dict, wait: float = 30.0) -> bool:
    """Whether the killed process has exited, waiting a little: a big process torn down on a loaded machine stays
    in the process table as running while the kernel unmaps its memory."""
    deadline = time.monotonic() + wait
    while True:
        try:
            process = psutil.Process(killed["pid"])
            # A zombie is dead, not yet reaped by the raylet; another start time means the pid was reused.
            if process.status() == psutil.STATUS_ZOMBIE or process.create_time() != killed["started"]:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _describe(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        return f"{p.status()} {p.create_time()} {p.cmdline()} parent {p.ppid()}"
    except psutil.NoSuchProcess:
        return "gone"


def test_killed_actor_and_raising_stage_lose_no_row(ray_local, tmp_path, monkeypatch):
    corpus = build_sample_corpus(tmp_path / "corpus", SampleCorpusConfig())
    broken_key = sample_key(corpus.entry(BROKEN).path)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    build = score_runner.build_stages
    monkeypatch.setattr(
        score_runner,
        "build_stages",
        lambda cfg: [BrokenPhash(s, broken_key) if isinstance(s, PhashStage) else s for s in build(cfg)],
    )
    out = tmp_path / "run"
    overrides = [
        f"input=[{corpus.images_dir}]",
        f"output={out}",
        "files_per_shard=4",
        "stages.phash.resources.batch_size=1",  # the failure then hits exactly the broken row
        # One row per model batch: the run lasts long enough to kill an actor while it works.
        *(f"stages.{name}.resources.batch_size=1" for name in MODEL_STAGES),
    ]
    cfg = load_curate_config(REPO / "configs/curation/demo.yaml", overrides)
    killed: dict = {}

    def kill_one_actor() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "pid" not in killed:
            done = len(list((out / "candidates").glob("*.done.json")))
            pids = _stage_actor_pids() if done >= 1 else []
            if pids:
                victim = psutil.Process(pids[0])
                killed.update(pid=victim.pid, markers=done, started=victim.create_time(), cmd=victim.cmdline())
                os.kill(victim.pid, signal.SIGKILL)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_actor, daemon=True)
    killer.start()
    run = score_runner.run_score(cfg)
    killer.join(timeout=10)

    n_shards = -(-len(corpus.entries) // 4)
    assert "pid" in killed and killed["markers"] < n_shards, killed  # killed mid-run, while shards were left
    assert _gone(killed), (killed, _describe(killed["pid"]))  # Ray Data restarts it (max_restarts=-1), retries
    rows = [r for p in sorted((out / "candidates").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    expected = {sample_key(e.path): e.expected_reason for e in corpus.entries}
    expected[broken_key] = stage_error("phash")
    assert {r["key"]: r["reject_reason"] for r in rows} == expected
    assert len(rows) == len(expected) == run.stats["rows_in"]
    assert run.stats["stages"]["phash"]["rejected"] == {stage_error("phash"): 1}
