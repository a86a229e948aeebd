"""A Ray cluster of two nodes on one machine, sealed off the network: two network namespaces joined by a veth pair and
nothing else (no default route, no link to the host), a head in the first and a worker node in the second.

Tests use the `two_node_cluster` fixture (`from tests.ray_cluster_rig import two_node_cluster`) or the
`sealed_ray_cluster` context manager, and run drivers and CLI commands in the head's namespace with `cluster.argv`
or `cluster.run`. Needs root; skipped otherwise.

The Ray processes get a private HOME (an empty `ray_bootstrap_config.yaml`, so the dashboard probes no cloud
metadata), usage stats off and token auth. RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is left out on purpose: with it a head
refuses a second node, and the sealed namespaces already keep every packet in.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from common.ray_bootstrap import local_ray_env, prepare_ray_home
from pipelines.commands.ray_local import stop_processes

REPO = Path(__file__).resolve().parents[1]
IP = shutil.which("ip")
RAY = Path(sys.executable).parent / "ray"
SUBNET = "10.77.9"  # private to the namespaces: every use has its own pair, so the addresses never collide
HEAD_IP, WORKER_IP = f"{SUBNET}.1", f"{SUBNET}.2"
PORT = 6379
OBJECT_STORE_BYTES = 256 * 1024**2  # Ray's default takes 30 % of RAM per node; tests move kilobytes
START_TIMEOUT_S = 120.0
DASHBOARD_PORT = 8265
DASHBOARD_ARGS = ["--include-dashboard=true", f"--dashboard-host={HEAD_IP}", f"--dashboard-port={DASHBOARD_PORT}"]
STOP_WAIT_S = 10.0

# Joins the cluster and waits until sys.argv[2] nodes are alive; prints {node ip: node id}.
WAIT_FOR_NODES = """
import json, sys, time, ray
from common.ray_bootstrap import init_ray, shutdown_ray

init_ray(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[3])
while True:
    alive = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
    if len(alive) >= int(sys.argv[2]) or time.monotonic() > deadline:
        break
    time.sleep(0.5)
shutdown_ray()
print(json.dumps(alive))
"""


@dataclass(frozen=True)
class SealedCluster:
    """A running sealed cluster: `address` is the head's GCS (ip:port); `node_ids` maps each node's IP to its Ray
    node id; `env` is what a process in the head's namespace needs (private HOME and TMPDIR, token auth)."""

    address: str
    head_ns: str
    worker_ns: str
    env: dict[str, str]
    node_ids: dict[str, str]
    root: Path

    @property
    def dashboard_url(self) -> str:
        return f"http://{HEAD_IP}:{DASHBOARD_PORT}"

    @property
    def head_node_id(self) -> str:
        return self.node_ids[HEAD_IP]

    @property
    def worker_node_id(self) -> str | None:
        return self.node_ids.get(WORKER_IP)

    def argv(self, *command: str | os.PathLike) -> list[str]:
        """`command` run inside the head's namespace (pass `env=cluster.env` to the process)."""
        return [IP, "netns", "exec", self.head_ns, *map(str, command)]

    def run(self, *command: str | os.PathLike, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
        """`command` inside the head's namespace from the repository root, with the cluster's env plus `env`."""
        return _run(*self.argv(*command), env={**self.env, **env}, cwd=REPO, timeout=timeout)


def _run(*command: str | os.PathLike, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, check=False, **kwargs)


def _ip(*args: str) -> None:
    done = _run(IP, *args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def cluster_env(home: Path, tmp: Path) -> dict[str, str]:
    """This process's env without its RAY_* switches, plus the private HOME, TMPDIR, usage-stats and auth settings of
    common.ray_bootstrap; RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is dropped (see the module docstring)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    ray_env = local_ray_env(home, tmp)
    del ray_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]
    return {**env, **ray_env}


@contextmanager
def sealed_namespaces(tag: str) -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair, HEAD_IP in the first and WORKER_IP in the second, loopback up; no other
    link, no default route. On exit every process still in them is stopped and both are deleted."""
    if os.geteuid() != 0 or IP is None:
        pytest.skip("needs root and iproute2 to make network namespaces")
    head_ns, worker_ns = f"h1b-a-{tag}", f"h1b-b-{tag}"
    if _run(IP, "netns", "add", head_ns).returncode != 0:
        pytest.skip("network namespaces cannot be created here")
    try:
        _ip("netns", "add", worker_ns)
        veth_a, veth_b = f"h1ba{tag}", f"h1bb{tag}"  # interface names have at most 15 characters
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        for ns, veth, addr in ((head_ns, veth_a, HEAD_IP), (worker_ns, veth_b, WORKER_IP)):
            _ip("link", "set", veth, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", veth, "up")
        yield head_ns, worker_ns
    finally:
        stop_namespace_processes(worker_ns, head_ns)
        for ns in (head_ns, worker_ns):
            _run(IP, "netns", "del", ns)  # deletes the veth pair with it


def namespace_pids(*namespaces: str) -> list[int]:
    return [int(pid) for ns in namespaces for pid in _run(IP, "netns", "pids", ns).stdout.split()]


def stop_namespace_processes(*namespaces: str) -> None:
    """Stop every process in `namespaces`, one namespace after the other: SIGTERM, SIGKILL what is left after
    STOP_WAIT_S. A head's GCS goes last: its raylet, sent SIGTERM together with it, waits on it for good.
    Not `ray stop`: it stops every Ray process of the machine by name, other tests' heads included."""
    for ns in namespaces:
        processes = []
        for pid in namespace_pids(ns):
            try:
                processes.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        gcs = [p for p in processes if _name(p) == "gcs_server"]
        for group in ([p for p in processes if p not in gcs], gcs):
            stop_processes(group, STOP_WAIT_S)


def _name(process: psutil.Process) -> str | None:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return None


def _ray_start(ns: str, env: dict[str, str], *args: str) -> None:
    started = _run(IP, "netns", "exec", ns, RAY, "start", *args, env=env, cwd=REPO, timeout=START_TIMEOUT_S)
    if started.returncode != 0:
        raise RuntimeError(f"ray start in {ns} failed:\n{(started.stdout + started.stderr)[-3000:]}")


@contextmanager
def sealed_ray_cluster(
    *, with_worker: bool = True, num_cpus: int = 1, dashboard: bool = False
) -> Iterator[SealedCluster]:
    """A Ray head (HEAD_IP:PORT; with `dashboard`, its dashboard and job server at `dashboard_url`) in a sealed
    namespace and, with `with_worker`, a worker node in the namespace at the other end of the veth pair; yields once
    all nodes are alive. Names and directories are unique per use, so one left over by a crashed run does not
    collide."""
    tag = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        head_ns, worker_ns = stack.enter_context(sealed_namespaces(tag))
        # Short: Ray's unix socket paths under the temp dirs have at most 107 bytes.
        root = Path(tempfile.mkdtemp(prefix=f"h1b-{tag}-", dir="/tmp"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        stack.callback(stop_namespace_processes, worker_ns, head_ns)  # before the dirs they write in go
        home, tmp = root / "home", root / "tmp"
        prepare_ray_home(home)
        tmp.mkdir()
        env = cluster_env(home, tmp)
        address = f"{HEAD_IP}:{PORT}"
        common = [f"--num-cpus={num_cpus}", f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
        _ray_start(
            head_ns, env, "--head", f"--node-ip-address={HEAD_IP}", f"--port={PORT}",
            *(DASHBOARD_ARGS if dashboard else ["--include-dashboard=false"]), f"--temp-dir={root / 'a'}", *common,
        )  # fmt: skip
        if with_worker:
            _ray_start(
                worker_ns, env, f"--address={address}", f"--node-ip-address={WORKER_IP}",
                f"--temp-dir={root / 'b'}", *common,
            )  # fmt: skip
        expected = 2 if with_worker else 1
        waited = _run(
            IP, "netns", "exec", head_ns, sys.executable, "-c", WAIT_FOR_NODES, address, str(expected),
            str(START_TIMEOUT_S), env=env, cwd=REPO, timeout=START_TIMEOUT_S + 60,
        )  # fmt: skip
        if waited.returncode != 0:
            raise RuntimeError(f"cannot join the sealed cluster at {address}:\n{waited.stderr[-3000:]}")
        node_ids = json.loads(waited.stdout.strip().splitlines()[-1])
        if len(node_ids) != expected:
            raise RuntimeError(f"{len(node_ids)} of {expected} nodes alive after {START_TIMEOUT_S:.0f} s: {node_ids}")
        yield SealedCluster(address, head_ns, worker_ns, env, node_ids, root)


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[SealedCluster]:
    """A sealed head and worker node, 1 CPU each, shared by the tests of a module."""
    with sealed_ray_cluster() as cluster:
        yield cluster
