"""common.ray_bootstrap and `humans1b ray-local`: Ray on 127.0.0.1 only, nothing left behind, nothing written
to HOME, no traffic beyond loopback."""

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import ray

from common.ray_bootstrap import BOOTSTRAP_CONFIG, init_ray, ray_session

LOOPBACK = "127.0.0.1"
STRACE = shutil.which("strace")
# Every syscall that names a peer address; seccomp-bpf stops only at those, so Ray runs at near full speed.
STRACE_ARGS = ["-f", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg,sendmmsg"]

# A driver that starts a local head, runs a task and shuts down; prints what it saw as JSON.
DRIVER = """
import json, ray
from common.ray_bootstrap import init_ray, shutdown_ray

handle = init_ray(num_cpus=1)
node_ip = ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote())
shutdown_ray()
print(json.dumps({"node_ip": node_ip, "temp_dir": str(handle.temp_dir), "initialized": ray.is_initialized()}))
"""

# A job entrypoint: joins the head it was submitted to (through RAY_ADDRESS) and runs a task.
JOB = """
import ray
from common.ray_bootstrap import init_ray

init_ray()
print("job ran on", ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote()))
"""


def _double(batch: dict) -> dict:
    return {"id": batch["id"] * 2}


def test_local_head_is_on_loopback(ray_local):
    assert ray_local.address.startswith(f"{LOOPBACK}:")
    assert ray_local.dashboard_url.startswith(f"http://{LOOPBACK}:")
    assert [node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]] == [LOOPBACK]
    assert ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote()) == LOOPBACK


def test_workers_get_the_private_home_and_the_driver_keeps_its_own(ray_local):
    worker_home = ray.get(ray.remote(lambda: os.environ["HOME"]).remote())
    assert worker_home == str(ray_local.home) != os.environ.get("HOME")
    assert (ray_local.home / BOOTSTRAP_CONFIG).read_text().strip() == "{}"


def test_ray_data_pipeline_runs(ray_local):
    ds = ray.data.range(1000, override_num_blocks=4).map_batches(_double, batch_size=100)
    assert sorted(row["id"] for row in ds.take_all()) == list(range(0, 2000, 2))


def test_init_again_starts_nothing(ray_local):
    assert init_ray(num_cpus=1) == ray_local
    assert len(ray.nodes()) == 1


def test_nested_session_leaves_the_outer_one_running(ray_local):
    with ray_session(num_cpus=1) as inner:
        assert inner == ray_local
    assert ray.is_initialized()
    assert ray.get(ray.remote(lambda: 1).remote()) == 1


@dataclass(frozen=True)
class DriverRun:
    seen: dict
    home: Path
    tmpdir: Path
    strace_log: Path | None


def _clean_env(**extra: str) -> dict[str, str]:
    # Without the RAY_* switches of this session: the code under test must set what it needs itself.
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, **extra}


@pytest.fixture(scope="module")
def driver_run(tmp_path_factory) -> Iterator[DriverRun]:
    """DRIVER run once in a fresh process with its own HOME and TMPDIR, under strace when it is installed."""
    home = tmp_path_factory.mktemp("home")
    # Short enough that Ray's temp dir goes inside it (pytest's tmp_path is too long for Ray's socket paths).
    tmpdir = Path(tempfile.mkdtemp(prefix="h1b-", dir="/tmp"))
    log = tmp_path_factory.mktemp("strace") / "driver.strace" if STRACE else None
    trace = [STRACE, *STRACE_ARGS, "-o", str(log)] if STRACE else []
    done = subprocess.run(
        [*trace, sys.executable, "-c", DRIVER],
        env=_clean_env(HOME=str(home), TMPDIR=str(tmpdir)),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        yield DriverRun(json.loads(done.stdout.strip().splitlines()[-1]), home, tmpdir, log)
    finally:
        shutil.rmtree(tmpdir)


def test_driver_process_sees_loopback_only(driver_run):
    assert driver_run.seen["node_ip"] == LOOPBACK
    assert not driver_run.seen["initialized"]


def test_shutdown_removes_what_it_made_and_home_is_untouched(driver_run):
    temp_dir = driver_run.seen["temp_dir"]
    assert temp_dir.startswith(f"{driver_run.tmpdir}/")
    assert list(driver_run.home.iterdir()) == []
    assert list(driver_run.tmpdir.iterdir()) == []  # temp dir, private HOME and pymp-* dirs all gone
    assert _processes_naming(temp_dir) == []


def _non_loopback_peers(strace_log: Path) -> tuple[int, list[str]]:
    """(number of IP peers seen, the ones that are not loopback) in an strace log of connect/send calls."""
    text = strace_log.read_text()
    peers = re.findall(r'inet_addr\("([^"]+)"\)', text) + re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', text)
    outside = []
    for peer in peers:
        address = ipaddress.ip_address(peer)
        address = getattr(address, "ipv4_mapped", None) or address
        if not address.is_loopback:
            outside.append(peer)
    return len(peers), sorted(set(outside))


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_local_head_sends_nothing_beyond_loopback(driver_run):
    n_peers, outside = _non_loopback_peers(driver_run.strace_log)
    assert n_peers > 0, "the strace log names no IP peer: has its format changed?"
    assert outside == []


def _processes_naming(text: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if any(text in arg for arg in p.info["cmdline"] or ())]


def _wait_for_line(path: Path, marker: str, process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if marker in text or process.poll() is not None:
            return text
        time.sleep(0.5)
    return path.read_text()


def test_ray_local_launcher_runs_a_submitted_job(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    state_dir = tmp_path / "state"
    env = _clean_env(HOME=str(home))
    cli = [sys.executable, "-m", "pipelines.cli", "ray-local"]
    trace = [STRACE, *STRACE_ARGS, "-o", str(tmp_path / "head.strace")] if STRACE else []
    start_out = tmp_path / "start.out"
    with start_out.open("w") as out:
        # Under strace the start command returns only when the head it traces stops; read its output file.
        start = subprocess.Popen(
            [*trace, *cli, "start", "--state-dir", str(state_dir), "--num-cpus", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        printed = _wait_for_line(start_out, "stop: ", start, timeout=120)
        assert "head running" in printed, printed
        submit = next(line.strip() for line in printed.splitlines() if " job submit " in line)
        words = shlex.split(submit)
        n_env = next(i for i, word in enumerate(words) if "=" not in word)
        client_env = dict(word.split("=", 1) for word in words[:n_env])
        assert client_env["RAY_AUTH_MODE"] == "token"
        command = [*words[n_env : words.index("--") + 1], "python", "-c", JOB]
        client_trace = [STRACE, *STRACE_ARGS, "-o", str(tmp_path / "client.strace")] if STRACE else []
        job = subprocess.run(
            [*client_trace, *command], env={**env, **client_env}, capture_output=True, text=True, timeout=180
        )
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert f"job ran on {LOOPBACK}" in job.stdout

        status = subprocess.run([*cli, "status", "--state-dir", str(state_dir)], env=env, capture_output=True)
        assert status.returncode == 0, status.stdout + status.stderr
        temp_dir = json.loads((state_dir / "state.json").read_text())["temp_dir"]
    finally:
        stop = subprocess.run([*cli, "stop", "--state-dir", str(state_dir)], env=env, capture_output=True, text=True)
        start.wait(timeout=60)
    assert stop.returncode == 0, stop.stderr
    assert not (state_dir / "state.json").exists()
    assert not Path(temp_dir).exists()
    assert _processes_naming(temp_dir) == []
    assert list(home.iterdir()) == []
    gone = subprocess.run([*cli, "status", "--state-dir", str(state_dir)], env=env, capture_output=True)
    assert gone.returncode == 1
    if STRACE:
        for log in ("head.strace", "client.strace"):
            n_peers, outside = _non_loopback_peers(tmp_path / log)
            assert n_peers > 0 and outside == [], log
