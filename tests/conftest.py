"""Test session set-up: nothing may reach beyond 127.0.0.1, so every library is switched to offline first."""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import psutil
import pytest

if TYPE_CHECKING:
    from common.ray_bootstrap import RayHandle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCORE_STAGES = ("decode", "phash", "detect", "head_pose", "clip", "aesthetic", "nsfw", "zero_shot")

# Set at import, before any test module imports ray or ultralytics: both read these once at import.
_YOLO_CONFIG_DIR = tempfile.mkdtemp(prefix="humans1b-yolo-")
atexit.register(shutil.rmtree, _YOLO_CONFIG_DIR, ignore_errors=True)
os.environ.update(
    {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": _YOLO_CONFIG_DIR,
        "HF_HUB_OFFLINE": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
)


@pytest.fixture(scope="session")
def ray_local() -> Iterator["RayHandle"]:
    """One local Ray head on 127.0.0.1 (2 CPUs) shared by the whole session."""
    from common.ray_bootstrap import ray_session

    with ray_session(num_cpus=2) as handle:
        yield handle


def _in_group(process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except (ProcessLookupError, psutil.NoSuchProcess):
        return False


def kill_job_when(command: list[str], ready: Callable[[], bool], *, env: dict[str, str], timeout: float = 300) -> None:
    """Start `command` in its own process group, wait until `ready()`, then SIGKILL the whole group at once (the
    driver and any Ray head it started) and wait until every process of it is gone."""
    job = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + timeout
    while not ready():
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "the job never reached the point to kill it at"
        time.sleep(0.05)
    group = [p for p in psutil.process_iter() if _in_group(p, job.pid)]
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    psutil.wait_procs(group, timeout=30)


@pytest.fixture
def kill_when():
    """kill_job_when, for tests that prove a killed run resumes without loss."""
    return kill_job_when


def slow_score_command(images: str | os.PathLike, out: str | os.PathLike) -> list[str]:
    """`humans1b curate score` of the demo config on `images`, made to finish its shards one at a time: two files per
    input shard and one row per batch, so a test has a wide window to stop the job mid-run."""
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "curate",
        "score",
        "--config",
        os.path.join(REPO, "configs/curation/demo.yaml"),
        f"input=[{images}]",
        f"output={out}",
        "files_per_shard=2",
        "num_cpus=2",
        *(f"stages.{stage}.resources.batch_size=1" for stage in SCORE_STAGES),
    ]


@pytest.fixture
def score_job_command():
    """slow_score_command, for tests that stop a score job mid-run."""
    return slow_score_command


@pytest.fixture
def job_env() -> Iterator[dict[str, str]]:
    """The environment for subprocess jobs: a killed Ray head cannot clean its temp dir, so jobs get a short
    TMPDIR that is removed afterwards."""
    scratch = tempfile.mkdtemp(prefix="h1b-job-", dir="/tmp")
    try:
        yield {**os.environ, "TMPDIR": scratch}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (process-group rendezvous in multi-process tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
