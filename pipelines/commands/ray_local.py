"""`humans1b ray-local {start,stop,status}`: a detached local Ray head on 127.0.0.1 to submit jobs to.

`start` runs `ray start --head --block` in its own session with a private HOME (see common.ray_bootstrap) and
records it in the state dir; `stop` ends that one process tree by its pid. `ray stop` is not used: it
terminates every Ray process on the machine, other users' heads included.
"""

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from common.ray_bootstrap import (
    DEFAULT_OBJECT_STORE_BYTES,
    LOCALHOST,
    local_ray_env,
    make_ray_temp_dir,
    prepare_ray_home,
)

NAME = "ray-local"
HELP = "start, stop or show a local Ray head bound to 127.0.0.1 for `ray job submit`"

STATE_FILE = "state.json"
HEAD_LOG = "head.log"
_STARTED_LINE = "Ray runtime started."


@dataclass(frozen=True)
class HeadState:
    """What `start` records in the state dir: the `ray start --block` process and where its head listens."""

    pid: int
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    home: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("start", "stop", "status"), help="start a head, stop it, or show it")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".ray-local"),
        help="holds the head's private HOME, its log and its state (default: .ray-local)",
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs the head offers (default: all)")
    parser.add_argument(
        "--object-store-memory", type=int, default=DEFAULT_OBJECT_STORE_BYTES, help="object store size in bytes"
    )
    parser.add_argument("--dashboard-port", type=int, default=0, help="dashboard and job API port (0: a free one)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the head to start or stop")


def run(args: argparse.Namespace) -> int:
    state_dir = args.state_dir.resolve()
    if args.action == "start":
        return _start(state_dir, args)
    if args.action == "stop":
        return _stop(state_dir, args.timeout)
    return _status(state_dir)


def client_env(state: HeadState) -> dict[str, str]:
    """Env a client (`ray job submit`, `ray status`) needs for this head: all but the private HOME and TMPDIR."""
    env = local_ray_env(Path(state.home), Path(state.temp_dir))
    del env["HOME"], env["TMPDIR"]
    return env


def submit_command(state: HeadState, entrypoint: list[str]) -> str:
    """The shell line that submits `entrypoint` as a job to this head."""
    env = " ".join(f"{key}={shlex.quote(value)}" for key, value in client_env(state).items())
    command = [_ray_executable(), "job", "submit", "--address", state.dashboard_url, "--", *entrypoint]
    return f"{env} {shlex.join(command)}"


def read_state(state_dir: Path) -> HeadState | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    return HeadState(**json.loads(path.read_text()))


def _start(state_dir: Path, args: argparse.Namespace) -> int:
    state = read_state(state_dir)
    if state is not None and _head_process(state) is not None:
        print(f"ray-local: already running (pid {state.pid})")
        _print_usage(state, state_dir)
        return 0
    if state is not None:
        _stop_head(state_dir, state, args.timeout)  # a head that died: clear what it left

    state_dir.mkdir(parents=True, exist_ok=True)
    home = state_dir / "home"
    prepare_ray_home(home)
    temp_dir = make_ray_temp_dir(prefix="ray-local-")
    env = local_ray_env(home, temp_dir)
    gcs_port, client_port, agent_port = _free_port(), _free_port(), _free_port()
    dashboard_port = args.dashboard_port or _free_port()
    command = [
        _ray_executable(),
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        LOCALHOST,
        "--dashboard-host",
        LOCALHOST,
        "--port",
        str(gcs_port),
        "--dashboard-port",
        str(dashboard_port),
        # Fixed default 10001 would clash with any other head on this machine.
        "--ray-client-server-port",
        str(client_port),
        # Known, so readiness can wait for the agent that runs submitted jobs.
        "--dashboard-agent-listen-port",
        str(agent_port),
        "--temp-dir",
        str(temp_dir),
        "--object-store-memory",
        str(args.object_store_memory),
    ]
    if args.num_cpus is not None:
        command += ["--num-cpus", str(args.num_cpus)]
    # Job entrypoints run with the head's PATH: put this interpreter's bin first so `python` is this venv's.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    log_path = state_dir / HEAD_LOG
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env, "PATH": path},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the terminal's Ctrl-C
        )
    state = HeadState(
        pid=process.pid,
        gcs_address=f"{LOCALHOST}:{gcs_port}",
        dashboard_url=f"http://{LOCALHOST}:{dashboard_port}",
        temp_dir=str(temp_dir),
        home=str(home),
    )
    # Recorded before waiting, so `stop` can clean up a head that fails to come up.
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n")

    deadline = time.monotonic() + args.timeout
    # Jobs are refused until the head's dashboard agent has registered, a while after `ray start` is done.
    agent_url = f"http://{LOCALHOST}:{agent_port}/api/healthz"
    while not (_started(log_path) and _answers(f"{state.dashboard_url}/api/version") and _answers(agent_url)):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_head(state_dir, state, args.timeout)
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print(f"ray-local: head did not start; end of {log_path}:", *tail, sep="\n", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"ray-local: head running (pid {state.pid}), GCS {state.gcs_address}")
    _print_usage(state, state_dir)
    return 0


def _stop(state_dir: Path, timeout: float) -> int:
    state = read_state(state_dir)
    if state is None:
        print(f"ray-local: no head recorded in {state_dir}")
        return 0
    _stop_head(state_dir, state, timeout)
    print(f"ray-local: stopped (pid {state.pid})")
    return 0


def _status(state_dir: Path) -> int:
    state = read_state(state_dir)
    if state is None or _head_process(state) is None:
        print(f"ray-local: not running (state dir {state_dir})")
        return 1
    print(f"ray-local: running (pid {state.pid}), GCS {state.gcs_address}, dashboard {state.dashboard_url}")
    status = subprocess.run(
        [_ray_executable(), "status", "--address", state.gcs_address],
        env={**os.environ, **client_env(state)},
        check=False,
    )
    return status.returncode


def _print_usage(state: HeadState, state_dir: Path) -> None:
    print(f"dashboard: {state.dashboard_url}")
    print("submit a job:")
    print(f"  {submit_command(state, ['python', 'your_job.py'])}")
    print(f"stop: humans1b ray-local stop --state-dir {shlex.quote(str(state_dir))}")


def _head_process(state: HeadState) -> psutil.Process | None:
    """The recorded `ray start --block` process if it still runs; None if the pid is gone or reused."""
    try:
        process = psutil.Process(state.pid)
        cmdline = process.cmdline()
    except psutil.Error:
        return None
    return process if "--head" in cmdline and state.temp_dir in cmdline else None


def _processes_using(temp_dir: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(temp_dir in arg for arg in process.info["cmdline"] or ()):
            found.append(process)
    return found


def stop_processes(processes: list[psutil.Process], timeout: float) -> None:
    """SIGTERM, then SIGKILL for what is still there after `timeout` seconds."""
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)


def _stop_head(state_dir: Path, state: HeadState, timeout: float) -> None:
    head = _head_process(state)
    if head is not None:
        # `ray start --block` stops the processes it started when it gets SIGTERM.
        stop_processes([head], timeout)
    # Workers may outlive their raylet for a moment; they are this head's if their command line names its temp dir.
    stop_processes(_processes_using(state.temp_dir), timeout)
    shutil.rmtree(state.temp_dir, ignore_errors=True)
    shutil.rmtree(state.home, ignore_errors=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)


def _started(log_path: Path) -> bool:
    return _STARTED_LINE in log_path.read_text(errors="replace")


def _answers(url: str) -> bool:
    # No proxies: a proxy from the environment would carry this request off the machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered (token auth may refuse the request)
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def _ray_executable() -> str:
    # The `ray` next to this interpreter, so an inactive venv still gets its own Ray.
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise FileNotFoundError(f"no `ray` executable next to {sys.executable} or on PATH; install ray[default]")
    return found
