"""One URL -> image bytes, or the kind of failure and a message. Never raises for anything a server can do.

Every hop is resolved and checked by address_guard, then connected to by IP (see there for DNS rebinding), so
redirects are followed here and never by the HTTP library. Bodies are streamed and cut off at `max_bytes`; a
body must be announced as image/* and start with the magic bytes of an image format.

One URL's fetch (every hop, retry, backoff wait, connect, headers and body) ends by `deadline` seconds (deadline.py,
bounded_http.py). Retries of 429 and 503 wait the server's Retry-After when it is under `retry_after_cap` and fits
the deadline; other retries wait a jittered exponential backoff. X-Robots-Tag is read on every response, redirects
included: an opt-out on any hop ends the fetch.
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.exceptions import HTTPError, LocationParseError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Url, parse_url

from curation.download.address_guard import (
    ForbiddenAddress,
    IPAddress,
    ResolveError,
    Resolver,
    check_host,
    system_resolver,
)
from curation.download.bounded_http import BoundedHTTPConnectionPool, BoundedHTTPSConnectionPool
from curation.download.config import DownloadConfig
from curation.download.deadline import Budget
from curation.download.host_limiter import HostLimiter
from curation.download.retry_delay import backoff_delay, retry_after_seconds
from curation.download.robots_tag import opted_out

log = logging.getLogger(__name__)

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
RETRY_AFTER_CODES = frozenset({429, 503})  # the statuses whose Retry-After says when to come back
_CHUNK = 64 * 1024


class ErrorKind(StrEnum):
    BAD_URL = "bad_url"  # not http(s), no host, unparsable
    DNS_ERROR = "dns_error"
    FORBIDDEN_ADDRESS = "forbidden_address"  # private, loopback, link-local, metadata, ... (any hop)
    TIMEOUT = "timeout"  # connecting, or waiting for bytes, took longer than `timeout` (after all retries)
    DEADLINE_EXCEEDED = "deadline_exceeded"  # the whole fetch (hops, retries, waits) ran past `deadline`
    CONNECTION_ERROR = "connection_error"  # refused, reset, TLS failure (after all retries)
    TOO_MANY_REDIRECTS = "too_many_redirects"
    REDIRECT_LOOP = "redirect_loop"
    OPTED_OUT = "opted_out"  # X-Robots-Tag carries a disallowed directive (noai, noimageai, ...)
    BAD_CONTENT_TYPE = "bad_content_type"  # not image/*
    TOO_LARGE = "too_large"  # body over max_bytes
    EMPTY_BODY = "empty_body"
    NOT_AN_IMAGE = "not_an_image"  # image/* announced, but no known image magic bytes
    # plus "http_<code>" for an HTTP error status, e.g. http_404


@dataclass(frozen=True)
class FetchResult:
    url: str
    data: bytes | None = None
    ext: str | None = None  # jpg, png, ... from the magic bytes
    error_kind: str | None = None
    error_message: str | None = None
    attempts: int = 0  # requests sent, retries and redirect hops included

    @property
    def ok(self) -> bool:
        return self.data is not None


def image_extension(data: bytes) -> str | None:
    """The file extension of the image format `data` starts with, or None when it is no known image."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":  # ISO base media: the major brand, then the compatible brands of the ftyp box
        box = head[8 : int.from_bytes(head[:4], "big")]
        brands = {box[i : i + 4] for i in range(0, len(box), 4)}
        if brands & {b"avif", b"avis"}:
            return "avif"
        if brands & {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}:
            return "heic"
    return None


@dataclass
class _Hop:
    """The outcome of one request: a result, a redirect target, or a failure worth retrying."""

    result: FetchResult | None = None
    location: str | None = None
    retryable: bool = False
    retry_after: str | None = None  # the Retry-After header of a 429 or 503


@dataclass
class Fetcher:
    """Thread-safe: one per shard task, shared by its download threads.

    `rng` draws the backoff jitter and `sleep` waits between attempts; tests pass a seeded rng and a recorder.
    """

    config: DownloadConfig
    resolver: Resolver = system_resolver
    limiter: HostLimiter | None = None
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    _pools: dict = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.limiter = self.limiter or HostLimiter(self.config.per_host_concurrency)
        self._disallowed = frozenset(d.lower() for d in self.config.disallowed_header_directives)

    def fetch(self, url: str) -> FetchResult:
        budget = Budget(self.config.deadline, self.config.timeout)
        seen: set[str] = set()
        current, attempts = url, 0
        for _ in range(self.config.max_redirects + 1):
            if current in seen:
                return self._fail(url, ErrorKind.REDIRECT_LOOP, f"redirected back to {current}", attempts)
            if budget.expired():
                return self._deadline(url, budget, f"before requesting {current}", attempts=attempts)
            seen.add(current)
            try:
                parsed = _parse_http_url(current)
                ip = check_host(
                    parsed.host.strip("[]"),
                    parsed.port or (443 if parsed.scheme == "https" else 80),
                    allow_loopback=self.config.allow_loopback,
                    resolver=self.resolver,
                )
            except LocationParseError as e:
                return self._fail(url, ErrorKind.BAD_URL, f"{current}: {e}", attempts)
            except ForbiddenAddress as e:
                return self._fail(url, ErrorKind.FORBIDDEN_ADDRESS, str(e), attempts)
            except ResolveError as e:
                return self._fail(url, ErrorKind.DNS_ERROR, str(e), attempts)
            hop, used = self._request_with_retries(url, current, parsed, ip, budget)
            attempts += used
            if hop.location is None:
                assert hop.result is not None
                return replace(hop.result, attempts=attempts)
            current = urljoin(current, hop.location)
        return self._fail(url, ErrorKind.TOO_MANY_REDIRECTS, f"more than {self.config.max_redirects}", attempts)

    def _request_with_retries(
        self, url: str, current: str, parsed: Url, ip: IPAddress, budget: Budget
    ) -> tuple[_Hop, int]:
        for attempt in range(self.config.retries + 1):
            hop = self._request(url, current, parsed, ip, budget)
            if not hop.retryable or attempt == self.config.retries:
                return hop, attempt + 1
            assert hop.result is not None
            delay = self._retry_delay(hop, attempt, budget)
            if isinstance(delay, str):  # no retry: give up now with this attempt's result, saying why
                return _Hop(replace(hop.result, error_message=f"{hop.result.error_message}; {delay}")), attempt + 1
            log.debug("%s: %s; retry %d in %.2fs", url, hop.result.error_kind, attempt + 1, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _retry_delay(self, hop: _Hop, attempt: int, budget: Budget) -> float | str:
        """Seconds to wait before the next attempt, or why there is no next attempt."""
        asked = retry_after_seconds(hop.retry_after, time.time()) if hop.retry_after is not None else None
        cap = self.config.retry_after_cap
        if asked is not None and asked > cap:
            return f"Retry-After {hop.retry_after.strip()!r} asks for {asked:.0f} s, over retry_after_cap {cap:g} s"
        delay = asked if asked is not None else backoff_delay(self.config.backoff, attempt, self.rng)
        left = budget.left()
        if delay >= left:
            what = "Retry-After" if asked is not None else "the backoff"
            return f"{what} of {delay:.2f} s would end past the {budget.seconds:g} s deadline ({left:.2f} s left)"
        return delay

    def _request(self, url: str, current: str, parsed: Url, ip: IPAddress, budget: Budget) -> _Hop:
        pool = self._pool(parsed, ip)
        host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        headers = {"Host": host_header, "User-Agent": self.config.user_agent, "Accept-Encoding": "identity"}
        queued = time.monotonic()
        with self.limiter.slot(parsed.host), budget.active():
            budget.exclude(time.monotonic() - queued)  # waiting for a free slot is not the server's time
            left = budget.left()
            if left <= 0:
                return _Hop(self._deadline(url, budget, f"before requesting {current}"))
            step = min(self.config.timeout, left)  # connect, TLS handshake, send: each one call bounded by this
            phase = "while connecting or reading the response head"
            try:
                response = pool.urlopen(
                    "GET",
                    parsed.request_uri,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    assert_same_host=False,
                    timeout=urllib3.Timeout(connect=step, read=step),
                )
                phase = "while reading the body"
                try:
                    return self._read(url, current, response, budget)
                finally:
                    response.release_conn()
            except HTTPError as e:  # urllib3 wraps socket, TLS and protocol errors, DeadlineExceeded included
                return self._network_failure(url, e, budget, phase)

    def _network_failure(self, url: str, error: HTTPError, budget: Budget, phase: str) -> _Hop:
        if budget.expired():  # the last wait was cut to the time left: the deadline, not the server, ended it
            return _Hop(self._deadline(url, budget, f"{phase} ({_short(error)})"))
        # NewConnectionError subclasses a timeout, but is a refused or unreachable connection
        timed_out = isinstance(error, Urllib3Timeout) and not isinstance(error, NewConnectionError)
        kind = ErrorKind.TIMEOUT if timed_out else ErrorKind.CONNECTION_ERROR
        return _Hop(self._fail(url, kind, _short(error)), retryable=True)

    def _read(self, url: str, current: str, response: urllib3.BaseHTTPResponse, budget: Budget) -> _Hop:
        robots = response.headers.getlist("X-Robots-Tag")
        if robots and opted_out(robots, self.config.user_agent_token, self._disallowed):  # any hop, any status
            return _Hop(self._fail(url, ErrorKind.OPTED_OUT, f"X-Robots-Tag {' | '.join(robots)!r} from {current}"))
        status = response.status
        if status in REDIRECT_CODES and response.headers.get("Location"):
            response.drain_conn()  # bounded by the deadline too; a failure just drops the connection
            return _Hop(location=response.headers["Location"])
        if not 200 <= status < 300:
            retryable = status == 429 or status >= 500
            retry_after = response.headers.get("Retry-After") if status in RETRY_AFTER_CODES else None
            message = f"HTTP {status} {response.reason or ''}".strip()
            return _Hop(self._fail(url, f"http_{status}", message), None, retryable, retry_after)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/"):
            return _Hop(self._fail(url, ErrorKind.BAD_CONTENT_TYPE, f"Content-Type {content_type or 'missing'!r}"))
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.config.max_bytes:
            return _Hop(self._fail(url, ErrorKind.TOO_LARGE, f"Content-Length {declared} > {self.config.max_bytes}"))
        body = bytearray()
        for chunk in response.stream(_CHUNK):
            body += chunk
            if len(body) > self.config.max_bytes:
                return _Hop(self._fail(url, ErrorKind.TOO_LARGE, f"body over {self.config.max_bytes} bytes"))
        if budget.expired():  # never "ok" for bytes that came in after the deadline
            return _Hop(self._deadline(url, budget, f"while reading the body ({len(body)} bytes read)"))
        if not body:
            return _Hop(self._fail(url, ErrorKind.EMPTY_BODY, "the response has no body"))
        ext = image_extension(bytes(body[:64]))
        if ext is None:
            return _Hop(self._fail(url, ErrorKind.NOT_AN_IMAGE, f"{content_type} body with no image magic bytes"))
        return _Hop(FetchResult(url=url, data=bytes(body), ext=ext))

    def _pool(self, parsed: Url, ip: IPAddress) -> urllib3.HTTPConnectionPool:
        """A pool per (scheme, IP, port, name): connections only ever go to the checked IP."""
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        name = parsed.host.strip("[]")
        key = (parsed.scheme, str(ip), port, name)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                common = {"port": port, "maxsize": self.config.per_host_concurrency, "retries": False}
                timeout = urllib3.Timeout(connect=self.config.timeout, read=self.config.timeout)
                if parsed.scheme == "https":  # TLS checks the certificate against the name, not the IP
                    pool = BoundedHTTPSConnectionPool(
                        str(ip), timeout=timeout, server_hostname=name, assert_hostname=name,
                        cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), **common,
                    )  # fmt: skip
                else:
                    pool = BoundedHTTPConnectionPool(str(ip), timeout=timeout, **common)
                self._pools[key] = pool
        return pool

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()

    @staticmethod
    def _fail(url: str, kind: str, message: str, attempts: int = 0) -> FetchResult:
        return FetchResult(url=url, error_kind=str(kind), error_message=message, attempts=attempts)

    def _deadline(self, url: str, budget: Budget, when: str, attempts: int = 0) -> FetchResult:
        message = f"the {budget.seconds:g} s deadline passed {when}"
        return self._fail(url, ErrorKind.DEADLINE_EXCEEDED, message, attempts)


def _parse_http_url(url: str) -> Url:
    parsed = parse_url(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise LocationParseError(f"only http(s) URLs with a host are fetched, got {url!r}")
    return parsed


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]
