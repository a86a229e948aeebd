"""One URL -> image bytes, or the kind of failure and a message. Never raises for anything a server can do.

Every hop is resolved and checked by address_guard, then connected to by IP (see there for DNS rebinding), so
redirects are followed here and never by the HTTP library. Bodies are streamed and cut off at `max_bytes`; a
body must be announced as image/* and start with the magic bytes of an image format.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.exceptions import HTTPError, LocationParseError, NewConnectionError, ProtocolError, SSLError
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
from curation.download.config import DownloadConfig
from curation.download.host_limiter import HostLimiter

log = logging.getLogger(__name__)

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class ErrorKind(StrEnum):
    BAD_URL = "bad_url"  # not http(s), no host, unparsable
    DNS_ERROR = "dns_error"
    FORBIDDEN_ADDRESS = "forbidden_address"  # private, loopback, link-local, metadata, ... (any hop)
    TIMEOUT = "timeout"  # connecting, or waiting for bytes, took longer than `timeout` (after all retries)
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


def opted_out(header_values: list[str], user_agent_token: str, disallowed: frozenset[str]) -> bool:
    """X-Robots-Tag as img2dataset reads it: "noai, noindex" applies to everyone, "bot: noai" to `bot` only."""
    for value in header_values:
        agent, colon, directives = value.partition(":") if ":" in value else ("", "", value)
        if colon and agent.strip().lower() != user_agent_token.lower():
            continue
        if any(d.strip().lower() in disallowed for d in directives.split(",")):
            return True
    return False


@dataclass
class _Hop:
    """The outcome of one request: a result, a redirect target, or a failure worth retrying."""

    result: FetchResult | None = None
    location: str | None = None
    retryable: bool = False


@dataclass
class Fetcher:
    """Thread-safe: one per shard task, shared by its download threads."""

    config: DownloadConfig
    resolver: Resolver = system_resolver
    limiter: HostLimiter | None = None
    _pools: dict = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.limiter = self.limiter or HostLimiter(self.config.per_host_concurrency)
        self._disallowed = frozenset(d.lower() for d in self.config.disallowed_header_directives)

    def fetch(self, url: str) -> FetchResult:
        seen: set[str] = set()
        current, attempts = url, 0
        for _ in range(self.config.max_redirects + 1):
            if current in seen:
                return self._fail(url, ErrorKind.REDIRECT_LOOP, f"redirected back to {current}", attempts)
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
            hop, used = self._request_with_retries(url, parsed, ip)
            attempts += used
            if hop.location is None:
                assert hop.result is not None
                return FetchResult(**{**hop.result.__dict__, "attempts": attempts})
            current = urljoin(current, hop.location)
        return self._fail(url, ErrorKind.TOO_MANY_REDIRECTS, f"more than {self.config.max_redirects}", attempts)

    def _request_with_retries(self, url: str, parsed: Url, ip: IPAddress) -> tuple[_Hop, int]:
        for attempt in range(self.config.retries + 1):
            hop = self._request(url, parsed, ip)
            if not hop.retryable or attempt == self.config.retries:
                return hop, attempt + 1
            delay = self.config.backoff * 2**attempt
            log.debug("%s: %s; retry %d in %.2fs", url, hop.result.error_kind, attempt + 1, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _request(self, url: str, parsed: Url, ip: IPAddress) -> _Hop:
        pool = self._pool(parsed, ip)
        host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        headers = {"Host": host_header, "User-Agent": self.config.user_agent, "Accept-Encoding": "identity"}
        with self.limiter.slot(parsed.host):
            try:
                response = pool.urlopen(
                    "GET",
                    parsed.request_uri,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    assert_same_host=False,
                )
                try:
                    return self._read(url, response)
                finally:
                    response.release_conn()
            except (NewConnectionError, SSLError, ProtocolError) as e:  # NewConnectionError subclasses a timeout
                return _Hop(self._fail(url, ErrorKind.CONNECTION_ERROR, _short(e)), retryable=True)
            except Urllib3Timeout as e:
                return _Hop(self._fail(url, ErrorKind.TIMEOUT, _short(e)), retryable=True)
            except HTTPError as e:
                return _Hop(self._fail(url, ErrorKind.CONNECTION_ERROR, _short(e)), retryable=True)

    def _read(self, url: str, response: urllib3.BaseHTTPResponse) -> _Hop:
        status = response.status
        if status in REDIRECT_CODES and response.headers.get("Location"):
            response.drain_conn()
            return _Hop(location=response.headers["Location"])
        if not 200 <= status < 300:
            retryable = status == 429 or status >= 500
            return _Hop(
                self._fail(url, f"http_{status}", f"HTTP {status} {response.reason or ''}".strip()), None, retryable
            )
        if opted_out(response.headers.getlist("X-Robots-Tag"), self.config.user_agent_token, self._disallowed):
            values = ", ".join(response.headers.getlist("X-Robots-Tag"))
            return _Hop(self._fail(url, ErrorKind.OPTED_OUT, f"X-Robots-Tag: {values}"))
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
                    pool = urllib3.HTTPSConnectionPool(
                        str(ip), timeout=timeout, server_hostname=name, assert_hostname=name,
                        cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), **common,
                    )  # fmt: skip
                else:
                    pool = urllib3.HTTPConnectionPool(str(ip), timeout=timeout, **common)
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


def _parse_http_url(url: str) -> Url:
    parsed = parse_url(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise LocationParseError(f"only http(s) URLs with a host are fetched, got {url!r}")
    return parsed


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]
