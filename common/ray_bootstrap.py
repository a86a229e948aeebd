"""Start a local Ray that keeps all traffic on 127.0.0.1, or join an existing cluster.

A local head stays off the network only with these measures together:
- RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, else Ray replaces 127.0.0.1 by the address it finds with a UDP
  connect to 8.8.8.8 (the driver reads it at import, so init_ray also sets Ray's cached copy);
- RAY_USAGE_STATS_ENABLED=0, plus RAY_USAGE_STATS_REPORT_URL on loopback for heads from `ray start`;
- `ray_bootstrap_config.yaml` in the HOME of the Ray processes, else the dashboard probes cloud metadata
  (169.254.169.254) to guess the provider. The processes get a private HOME holding that file (and the
  auth token), so the user's HOME is never written.

Joining a cluster (`address=` or RAY_ADDRESS) is bounded in time: ray.init retries an address where nothing
answers for minutes, so the address is probed first (TCP, then a gRPC handshake) within `connect_timeout`. A
loopback address gets the local head's switches, so Ray keeps 127.0.0.1; for a remote cluster Ray picks this host's
node among the cluster's nodes (tests/common/test_ray_join.py proves nothing goes to 8.8.8.8 on the way).
"""

import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil
import ray
import ray._private.ray_constants as ray_constants
import ray._private.services as ray_services

from common.errors import UsageError

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
BOOTSTRAP_CONFIG = "ray_bootstrap_config.yaml"
# Ray's default takes 30 % of RAM (~7 GiB on a 24 GiB box) away from the model weights held by the
# workers; 2 GiB holds hundreds of decoded image batches.
DEFAULT_OBJECT_STORE_BYTES = 2 * 1024**3
# Unix socket paths are limited to 107 bytes; Ray puts them at
# <temp_dir>/session_<date>_<time>_<micros>_<pid>/sockets/plasma_store (~63 bytes after temp_dir).
_MAX_TEMP_ROOT_CHARS = 40
# ray.shutdown returns before the dashboard's helper processes have exited; wait this long for them.
_EXIT_WAIT_S = 20.0
# How long joining a cluster may take before it fails with one line; the env variable overrides it.
DEFAULT_CONNECT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_ENV = "HUMANS1B_RAY_CONNECT_TIMEOUT"
# The switches a driver needs on a loopback address so that Ray neither rewrites 127.0.0.1 nor reports usage.
_LOOPBACK_DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


class RayUnreachableError(UsageError):
    """`address` (or RAY_ADDRESS) names no running Ray cluster that answered in time."""


@dataclass(frozen=True)
class RayHandle:
    """What init_ray connected to; home and temp_dir are set only for a local head it started."""

    address: str
    dashboard_url: str | None
    home: Path | None = None
    temp_dir: Path | None = None


@dataclass
class _LocalSession:
    handle: RayHandle
    saved_env: dict[str, str | None]
    saved_enable_cluster: bool
    processes: list[psutil.Process]  # the head's processes, direct children of this driver


@dataclass
class _JoinedSession:
    handle: RayHandle
    saved_env: dict[str, str | None]
    saved_enable_cluster: bool


_session: _LocalSession | None = None
_joined: _JoinedSession | None = None


def prepare_ray_home(home: Path) -> None:
    """Write what Ray processes read from their HOME: an empty `ray_bootstrap_config.yaml` and an auth token."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / BOOTSTRAP_CONFIG
    if not config.exists():
        config.write_text("{}\n")
    token = _token_path(home)
    if not token.exists():
        token.parent.mkdir(exist_ok=True)
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))


def local_ray_env(home: Path, temp_dir: Path) -> dict[str, str]:
    """The env of a local head's processes: private `home` (see prepare_ray_home) and Ray `temp_dir`.

    Clients of the head (`ray job submit`, drivers) need the same without HOME and TMPDIR.
    """
    return {
        "HOME": str(home),
        # Python's multiprocessing in the head leaves pymp-* dirs in TMPDIR; keep them in what shutdown removes.
        "TMPDIR": str(temp_dir),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        # A head from `ray start` reports "usage stats disabled" once to usage-stats.ray.io; this is the
        # only switch for that request, so it goes to a closed port on loopback instead.
        "RAY_USAGE_STATS_REPORT_URL": f"http://{LOCALHOST}:9/",
        # Token auth set explicitly, with the token path, so clients find the token without this HOME.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(_token_path(home)),
    }


def make_ray_temp_dir(prefix: str = "ray-") -> Path:
    """A fresh directory for Ray's `temp_dir`, short enough for Ray's unix socket paths."""
    root = tempfile.gettempdir()
    if len(root) > _MAX_TEMP_ROOT_CHARS:
        root = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    host: str = LOCALHOST,
    connect_timeout: float | None = None,
) -> RayHandle:
    """Connect to `address` ("ray://host:port", "host:port" or "auto"), or start a local head on `host`.

    Without `address`, RAY_ADDRESS is used when set (as inside a submitted job); otherwise a local head starts
    with `num_cpus` and `num_gpus` (default: all there are) and `object_store_memory` (default 2 GiB), listening on
    `host` only (default 127.0.0.1; another address is a deliberate choice, see local_head_args). Calling it again
    while Ray is initialised returns the current handle without starting anything. Joining fails with
    RayUnreachableError after `connect_timeout` seconds (default: $HUMANS1B_RAY_CONNECT_TIMEOUT, else 30) when
    nothing answers.
    """
    if _session is not None and not ray.is_initialized():
        shutdown_ray()  # ray.shutdown() was called directly: finish cleaning up that head first
    if ray.is_initialized():
        current = _session.handle if _session is not None else (_joined.handle if _joined is not None else None)
        if current is None:
            current = RayHandle(address=ray.get_runtime_context().gcs_address, dashboard_url=None)
        logger.info("Ray already initialised at %s; not starting another", current.address)
        return current

    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        if num_cpus is not None or num_gpus is not None or object_store_memory is not None:
            logger.info("num_cpus, num_gpus, object_store_memory apply to a local head only; ignored for %s", address)
        return _join(address, runtime_env, _connect_timeout(connect_timeout))
    return _start_local(num_cpus, num_gpus, object_store_memory, runtime_env, host)


def _connect_timeout(given: float | None) -> float:
    if given is not None:
        return given
    text = os.environ.get(CONNECT_TIMEOUT_ENV)
    if not text:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{CONNECT_TIMEOUT_ENV}={text!r} must be a number of seconds > 0")
    return value


def _join(address: str, runtime_env: dict[str, Any] | None, timeout: float) -> RayHandle:
    """ray.init(address=...) once the address has answered within `timeout` seconds."""
    global _joined
    deadline = time.monotonic() + timeout
    host, port = _endpoint(address)
    saved_env = {key: os.environ.get(key) for key in _LOOPBACK_DRIVER_ENV}
    saved_enable_cluster = ray_constants.ENABLE_RAY_CLUSTER
    if is_loopback(host):
        # The local head's switches (see the module docstring): Ray keeps 127.0.0.1 as this driver's address.
        # Elsewhere Ray finds the node of this host among the cluster's nodes (no 8.8.8.8: a test proves it).
        os.environ.update(_LOOPBACK_DRIVER_ENV)
        ray_constants.ENABLE_RAY_CLUSTER = False
    joined = False
    try:
        _wait_until_answering(address, host, port, deadline)
        with _one_gcs_attempt(), _keep_python_signal_handlers():
            context = ray.init(address=address, runtime_env=runtime_env)
        joined = True
    except ConnectionError as err:  # answered the probe, then ray.init gave up: not a Ray cluster we can join
        raise RayUnreachableError(f"cannot join the Ray cluster at {address}: {_first_line(err)}") from err
    finally:
        if not joined:  # the switches stay only for the session they were set for
            _restore(saved_env, saved_enable_cluster)
    handle = RayHandle(address=address, dashboard_url=_http_url(context.dashboard_url))
    _joined = _JoinedSession(handle, saved_env, saved_enable_cluster)
    logger.info("Connected to Ray at %s", address)
    return handle


def _endpoint(address: str) -> tuple[str, int]:
    """(host, port) of a cluster address; "auto" is looked up where Ray records the latest local cluster."""
    given = address
    if address == "auto":
        saved = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False  # a recorded 127.0.0.1 must stay loopback, not be re-resolved
        try:
            address = ray_services.canonicalize_bootstrap_address("auto")
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = saved
        if address is None:
            raise RayUnreachableError(
                "address=auto found no Ray cluster started on this machine: start one (`ray start --head` or "
                "`humans1b ray-local start`) or give its host:port"
            )
    location = address.split("://", 1)[1] if "://" in address else address
    host, colon, port = location.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit():
        raise RayUnreachableError(f"Ray address {given!r} is not host:port, ray://host:port or auto")
    return host, int(port)


def _wait_until_answering(address: str, host: str, port: int, deadline: float) -> None:
    """Return once `host:port` accepts a TCP connection and completes a gRPC (HTTP/2) handshake, as Ray's GCS
    and Ray Client server do; RayUnreachableError at `deadline`. A refused port is retried: a head may be starting."""
    refused: OSError | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            why = f"nothing accepted a connection ({refused.strerror or refused})" if refused else "no answer"
            raise RayUnreachableError(
                f"no Ray cluster at {address}: {why} within the connect timeout; start the cluster or fix "
                f"--address / RAY_ADDRESS (wait longer with {CONNECT_TIMEOUT_ENV}=SECONDS)"
            )
        try:
            with socket.create_connection((host, port), timeout=min(left, 5.0)):
                break
        except OSError as err:
            refused = err
            time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return  # the handshake below is plaintext; a TLS cluster is left to ray.init
    channel = grpc.insecure_channel(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=max(deadline - time.monotonic(), 0.1))
    except grpc.FutureTimeoutError:
        raise RayUnreachableError(
            f"{address} accepts connections but does not answer as a Ray cluster (no gRPC handshake within the "
            "connect timeout): is it the GCS port of a Ray head (default 6379) or a Ray Client port (ray://)?"
        ) from None
    finally:
        channel.close()


@contextmanager
def _one_gcs_attempt() -> Iterator[None]:
    """ray.init connects to the GCS up to 20 times, ~40 s each, when the port answers but the GCS does not; the
    probe has already waited, so one attempt is enough."""
    key = "RAY_gcs_server_port_wait_time_s"
    saved = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        _set_env(key, saved)


@contextmanager
def _keep_python_signal_handlers() -> Iterator[None]:
    """ray.init replaces SIGTERM's handler (Python: sys.exit(15); its core worker: a C++ handler that prints a stack
    and aborts). A handler the program installed itself is put back, so it still decides how the driver stops."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(before) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, before)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def local_head_args(host: str = LOCALHOST) -> dict[str, str]:
    """The ray.init arguments that decide where a local head listens: its node address and the dashboard's.

    Any host other than loopback exposes the dashboard and the jobs API, which run code on the cluster: token
    auth (RAY_AUTH_MODE=token, set for every head started here) is their only guard, so it gets a warning.
    """
    if not is_loopback(host):
        logger.warning(
            "Ray will listen on %s, not loopback: anyone who reaches it and holds the auth token can submit jobs. "
            "The Ray dashboard and jobs API have no authentication of their own; token auth is on, but keep the "
            "port behind a firewall or an SSH tunnel, or leave host at %s",
            host,
            LOCALHOST,
        )
    return {"dashboard_host": host, "_node_ip_address": host}


def _start_local(
    num_cpus: int | None,
    num_gpus: int | None,
    object_store_memory: int | None,
    runtime_env: dict[str, Any] | None,
    host: str,
) -> RayHandle:
    global _session
    temp_dir = make_ray_temp_dir()
    home = temp_dir / "home"
    prepare_ray_home(home)
    env = local_ray_env(home, temp_dir)
    # ray.init turns token auth on itself and refreshes the config it cached at import; setting
    # RAY_AUTH_MODE before would leave that cache at "disabled" and lock the driver out of its own head.
    env.pop("RAY_AUTH_MODE")
    saved_env = {key: os.environ.get(key) for key in env}
    # The processes ray.init spawns inherit os.environ, so the private HOME and the switches must be set now.
    os.environ.update(env)
    # The driver read this switch when ray was imported; it decides how 127.0.0.1 below is resolved.
    saved_enable_cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    driver = psutil.Process()
    children_before = {child.pid for child in driver.children()}
    try:
        with _keep_python_signal_handlers():
            context = ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                object_store_memory=object_store_memory or DEFAULT_OBJECT_STORE_BYTES,
                runtime_env=runtime_env,
                include_dashboard=True,
                _temp_dir=str(temp_dir),
                **local_head_args(host),
            )
    except BaseException:
        ray.shutdown()  # whatever part of the head did start
        _restore(saved_env, saved_enable_cluster)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    finally:
        # The driver keeps the user's HOME and TMPDIR (tempfile cached it in make_ray_temp_dir); the head
        # and its workers keep the private ones.
        _set_env("HOME", saved_env["HOME"])
        _set_env("TMPDIR", saved_env["TMPDIR"])
    handle = RayHandle(
        address=context.address_info["gcs_address"],
        dashboard_url=_http_url(context.dashboard_url),
        home=home,
        temp_dir=temp_dir,
    )
    processes = [child for child in driver.children() if child.pid not in children_before]
    _session = _LocalSession(handle, saved_env, saved_enable_cluster, processes)
    logger.info("Started local Ray at %s (dashboard %s, temp dir %s)", handle.address, handle.dashboard_url, temp_dir)
    return handle


def shutdown_ray() -> None:
    """Disconnect from Ray; for a local head, stop it and remove its private HOME and temp dir."""
    global _session, _joined
    session, joined, _session, _joined = _session, _joined, None, None
    if session is None:
        ray.shutdown()
        if joined is not None:
            _restore(joined.saved_env, joined.saved_enable_cluster)
        return
    processes = _with_descendants(session.processes)
    ray.shutdown()
    _, alive = psutil.wait_procs(processes, timeout=_EXIT_WAIT_S)
    _restore(session.saved_env, session.saved_enable_cluster)
    temp_dir = session.handle.temp_dir
    if alive:
        # They may still write logs into it; removing it under them would fail half-way.
        pids = sorted(p.pid for p in alive)
        logger.warning("Ray processes %s still running after shutdown; leaving %s in place", pids, temp_dir)
    elif temp_dir is not None:
        shutil.rmtree(temp_dir)
    logger.info("Stopped local Ray at %s", session.handle.address)


@contextmanager
def ray_session(address: str | None = None, **kwargs: Any) -> Iterator[RayHandle]:
    """init_ray(address, **kwargs) for the block; on exit shutdown_ray(), unless Ray was already initialised
    (an outer session, such as a test fixture's, keeps running)."""
    owner = not ray.is_initialized()
    handle = init_ray(address, **kwargs)
    try:
        yield handle
    finally:
        if owner:
            shutdown_ray()


def _token_path(home: Path) -> Path:
    return home / ".ray" / "auth_token"


def _http_url(host_port: str | None) -> str | None:
    # Ray reports the dashboard as "host:port".
    if not host_port:
        return None
    return host_port if "://" in host_port else f"http://{host_port}"


def _with_descendants(processes: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for process in processes:
        try:
            found += [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def _restore(saved_env: Mapping[str, str | None], saved_enable_cluster: bool) -> None:
    for key, value in saved_env.items():
        _set_env(key, value)
    ray_constants.ENABLE_RAY_CLUSTER = saved_enable_cluster


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
