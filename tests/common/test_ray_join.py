"""Joining a Ray cluster (`address=` / RAY_ADDRESS): bounded in time, loopback kept loopback, and a remote cluster
reached from the address on the route to it, never one found through 8.8.8.8."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ray_bootstrap import CONNECT_TIMEOUT_ENV
from tests.ray_cluster_rig import sealed_ray_cluster

REPO = Path(__file__).resolve().parents[2]
STRACE = shutil.which("strace")
IP = shutil.which("ip")
STRACE_ARGS = ["-f", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg,sendmmsg"]

# A driver that joins ADDRESS, runs a task, and prints the node address Ray gave it.
JOIN = """
import json, sys, ray
from common.ray_bootstrap import init_ray, shutdown_ray

init_ray(sys.argv[1])
seen = {"driver": ray.util.get_node_ip_address(), "task": ray.get(ray.remote(ray.util.get_node_ip_address).remote())}
shutdown_ray()
print(json.dumps(seen))
"""


# init_ray(ADDRESS, connect_timeout=TIMEOUT or None); prints the UsageError it raised, if any, and the time taken.
TRY_JOIN = """
import json, sys, time
from common.errors import UsageError
from common.ray_bootstrap import init_ray, shutdown_ray

start, seen = time.monotonic(), {"error": None, "message": None}
try:
    init_ray(sys.argv[1], connect_timeout=float(sys.argv[2]) if sys.argv[2] else None)
    shutdown_ray()
except UsageError as err:
    seen = {"error": type(err).__name__, "message": str(err)}
print(json.dumps({**seen, "seconds": time.monotonic() - start}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    # Without this session's RAY_* switches: the join path must set what it needs itself.
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never says anything: not a Ray cluster."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def try_join(address: str, timeout: float | None = None, **env: str) -> dict:
    """init_ray(address) in a fresh process (here Ray may already be initialised, and init_ray then joins nothing):
    the error it raised, its message and how long it took."""
    done = subprocess.run(
        [sys.executable, "-c", TRY_JOIN, address, "" if timeout is None else str(timeout)],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_address_where_nothing_listens_fails_within_the_timeout():
    port = _free_port()
    seen = try_join(f"127.0.0.1:{port}", 2)
    assert seen["error"] == "RayUnreachableError"
    assert re.match(rf"no Ray cluster at 127\.0\.0\.1:{port}: nothing accepted", seen["message"]), seen
    assert seen["seconds"] < 10  # ray.init alone retries such an address for over 5 minutes


def test_a_port_that_is_not_ray_fails_within_the_timeout(silent_listener):
    seen = try_join(f"127.0.0.1:{silent_listener}", 2)
    assert seen["error"] == "RayUnreachableError"
    assert "accepts connections but does not answer as a Ray cluster" in seen["message"]
    assert seen["seconds"] < 10


def test_the_timeout_comes_from_the_environment():
    seen = try_join(f"127.0.0.1:{_free_port()}", **{CONNECT_TIMEOUT_ENV: "1"})
    assert seen["error"] == "RayUnreachableError" and "nothing accepted a connection" in seen["message"]
    assert seen["seconds"] < 5
    seen = try_join(f"127.0.0.1:{_free_port()}", **{CONNECT_TIMEOUT_ENV: "0"})
    assert (seen["error"], seen["message"]) == (
        "UsageError",
        f"{CONNECT_TIMEOUT_ENV}='0' must be a number of seconds > 0",
    )


@pytest.mark.parametrize("address", ["nonsense", "host:", ":6379", "ray://h:x"])
def test_a_malformed_address_is_one_usage_error(address):
    seen = try_join(address, 1)
    assert seen["error"] == "RayUnreachableError"
    assert seen["message"] == f"Ray address {address!r} is not host:port, ray://host:port or auto"


def test_joining_the_local_head_on_loopback_stays_on_loopback(ray_local, tmp_path):
    """A driver without any RAY_* switch joins 127.0.0.1:port; without the loopback settings Ray would turn
    127.0.0.1 into the eth0 address and never reach a head that listens on loopback only."""
    trace = [STRACE, *STRACE_ARGS, "-o", str(tmp_path / "join.strace")] if STRACE else []
    env = _clean_env(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(ray_local.home / ".ray" / "auth_token"), HOME=str(tmp_path)
    )
    done = subprocess.run(
        [*trace, sys.executable, "-c", JOIN, ray_local.address],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"driver": "127.0.0.1", "task": "127.0.0.1"}
    if STRACE:
        peers = _ip_peers(tmp_path / "join.strace")
        assert peers and all(peer.startswith("127.") for peer in peers), peers


def _ip_peers(strace_log: Path) -> set[str]:
    return set(re.findall(r'inet_addr\("([^"]+)"\)', strace_log.read_text()))


def _run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture
def sealed_head() -> Iterator[dict]:
    """A Ray head at 10.77.9.1 in a network namespace joined by a veth pair to a second, empty namespace and to
    nothing else: no packet can leave, no default route exists, and an attempt to reach 8.8.8.8 shows in strace."""
    with sealed_ray_cluster(with_worker=False) as cluster:
        yield {"ns": cluster.head_ns, "env": cluster.env, "address": cluster.address}


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_a_remote_cluster_is_joined_from_the_address_on_its_route(sealed_head, tmp_path):
    log = tmp_path / "remote.strace"
    done = _run(
        IP, "netns", "exec", sealed_head["ns"], STRACE, *STRACE_ARGS, "-o", str(log),
        sys.executable, "-c", JOIN, sealed_head["address"],
        env=sealed_head["env"], cwd=REPO, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"driver": "10.77.9.1", "task": "10.77.9.1"}
    peers = _ip_peers(log)
    assert "10.77.9.1" in peers
    assert all(peer == "10.77.9.1" or peer.startswith("127.") for peer in peers), peers  # no 8.8.8.8
