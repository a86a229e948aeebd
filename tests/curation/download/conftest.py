"""A local image server on 127.0.0.1 with one route per way a download can go right or wrong; it counts hits."""

import contextlib
import io
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import skimage.data
import ultralytics
from PIL import Image

SLOW_SECONDS = 2.5  # longer than every test's timeout
TRICKLE_SECONDS = 0.2  # the trickling routes send one byte per this many seconds
MAX_BYTES = 2 * 1024 * 1024  # the tests' max_bytes; the oversize routes send more
JPEG = (Path(ultralytics.__file__).parent / "assets" / "zidane.jpg").read_bytes()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()
REDIRECTS = {
    "/redirect-good": "/good.jpg",
    "/redirect-relative": "good.png",
    "/loop-a": "/loop-b",
    "/loop-b": "/loop-a",
    "/redirect-private": "http://10.0.0.1/a.jpg",
    "/redirect-metadata": "http://169.254.169.254/latest/meta-data/",
    "/redirect-v6-linklocal": "http://[fe80::1]/a.jpg",
    "/redirect-v6-metadata": "http://[fd00:ec2::254]/a.jpg",
    "/redirect-mapped": "http://[::ffff:10.0.0.1]/a.jpg",
    "/redirect-unspecified": "http://0.0.0.0/a.jpg",
    "/redirect-name-metadata": "http://metadata.test/latest/",
    "/redirect-ftp": "ftp://127.0.0.1/a.jpg",
}
# path -> the X-Robots-Tag header(s) of a 200 image response
ROBOTS_TAGGED = {
    "/noai.jpg": ["noindex, noai"],
    "/otherbot-noai.jpg": ["otherbot: noai"],
    "/mybot-noai.jpg": ["humans1b: noimageai"],
    "/noai-semicolon.jpg": ["noai; noimageai"],
    "/scoped-noai.jpg": ["otherbot: noindex, humans1b: noai"],
    "/two-robots-headers.jpg": ["otherbot: noai", "humans1b: noindex"],
    "/preview-none.jpg": ["max-image-preview: none"],  # "none" is a value here, not the none directive
}
# path -> the X-Robots-Tag header of a redirect to /good.jpg
ROBOTS_TAGGED_REDIRECTS = {
    "/redirect-noai": "noai",
    "/redirect-scoped-noai": "otherbot: noindex, humans1b: noai",
    "/redirect-otherbot-noai": "otherbot: noai",
}
# path -> (status, Retry-After, how many first requests get that answer before a 200; None: all of them)
RETRY_AFTER = {
    "/retry-after-1.jpg": (429, "1", 1),
    "/retry-after-5.jpg": (429, "5", None),
    "/retry-after-3600.jpg": (429, "3600", None),
    "/retry-after-bad.jpg": (503, "soon", None),
    "/busy-503.jpg": (503, "0", 1),
}


@dataclass
class ImageServer:
    base: str  # http://127.0.0.1:PORT
    hits: Counter = field(default_factory=Counter)  # path -> requests received
    user_agents: list[str] = field(default_factory=list)
    host_headers: list[str] = field(default_factory=list)
    hit_times: dict[str, list[float]] = field(default_factory=dict)  # path -> time.monotonic() of each request
    closing: threading.Event = field(default_factory=threading.Event)  # set on teardown: trickles stop

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "image/jpeg",
        repeated: tuple[tuple[str, str], ...] = (),  # headers that may occur more than once
        **headers: str,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in [*((n.replace("_", "-"), v) for n, v in headers.items()), *repeated]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, data: bytes) -> None:
        """Send `data` one byte per TRICKLE_SECONDS: every single read succeeds in time, the whole never does."""
        self.close_connection = True
        for i in range(len(data)):
            if self.server.state.closing.wait(TRICKLE_SECONDS):
                return
            self.wfile.write(data[i : i + 1])

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?")[0]
        with self.server.lock:
            state.hits[path] += 1
            hits = state.hits[path]
            state.hit_times.setdefault(path, []).append(time.monotonic())
            state.user_agents.append(self.headers.get("User-Agent", ""))
            state.host_headers.append(self.headers.get("Host", ""))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts, size caps)
            self._route(path, hits)

    def _route(self, path: str, hits: int) -> None:
        if path in ("/good.jpg", "/caption.jpg"):
            self._send(200, JPEG)
        elif path == "/good.png":
            self._send(200, PNG, "image/png")
        elif path == "/slow.jpg":
            time.sleep(SLOW_SECONDS)
            self._send(200, JPEG)
        elif path == "/404.jpg":
            self._send(404, b"not found", "text/plain")
        elif path == "/always500.jpg":
            self._send(500, b"oops", "text/plain")
        elif path == "/flaky.jpg":  # fails the first time only
            self._send(500, b"oops", "text/plain") if hits == 1 else self._send(200, JPEG)
        elif path == "/page.html":
            self._send(200, b"<html><body>not an image</body></html>", "text/html; charset=utf-8")
        elif path == "/fake.jpg":
            self._send(200, b"this is text pretending to be a jpeg" * 10)
        elif path == "/empty.jpg":
            self._send(200, b"")
        elif path == "/huge.jpg":  # announces its size
            self._send(200, JPEG[:3] + b"\0" * (MAX_BYTES + 10))
        elif path == "/huge-unannounced.jpg":  # no Content-Length: the cap must hold while streaming
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            self.wfile.write(JPEG[:3] + b"\0" * (MAX_BYTES + 10))
        elif path in ROBOTS_TAGGED:
            self._send(200, JPEG, repeated=tuple(("X-Robots-Tag", v) for v in ROBOTS_TAGGED[path]))
        elif path in ROBOTS_TAGGED_REDIRECTS:
            self._send(302, b"", "text/plain", Location="/good.jpg", X_Robots_Tag=ROBOTS_TAGGED_REDIRECTS[path])
        elif path == "/404-noai.jpg":
            self._send(404, b"not found", "text/plain", X_Robots_Tag="noai")
        elif path in RETRY_AFTER:
            status, retry_after, until = RETRY_AFTER[path]
            if until is None or hits <= until:
                self._send(status, b"busy", "text/plain", Retry_After=retry_after)
            else:
                self._send(200, JPEG)
        elif path == "/trickle-head.jpg":  # status line and headers one byte at a time
            head = f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(JPEG)}\r\n\r\n"
            self._trickle(head.encode() + JPEG)
        elif path == "/trickle-body.jpg":  # the head at once, then the body one byte at a time
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self._trickle(JPEG)
        elif path.startswith("/chain/"):  # /chain/N redirects N more times
            left = int(path.rsplit("/", 1)[1])
            self._send(302, b"", "text/plain", Location=f"/chain/{left - 1}") if left else self._send(200, JPEG)
        elif path in REDIRECTS:
            self._send(302, b"", "text/plain", Location=REDIRECTS[path])
        else:
            self._send(404, b"no such route", "text/plain")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ImageServer | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.state = state or ImageServer(base=f"http://127.0.0.1:{self.server_address[1]}")


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.state.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def fake_resolver(table: dict[str, list[str]]):
    """A resolver for names the tests make up; any other name fails as an unknown host would."""

    def resolve(host: str, port: int) -> list[str]:
        from curation.download.address_guard import ResolveError

        if host not in table:
            raise ResolveError(f"cannot resolve {host!r}: unknown test name")
        return table[host]

    return resolve


@pytest.fixture
def tls_trickle_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose TLS handshake never ends: it answers the ClientHello with the 5-byte header of a
    16 KiB handshake record, then sends that record one byte per TRICKLE_SECONDS. One connection at a time."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # the client hung up
                conn.recv(4096)
                conn.sendall(b"\x16\x03\x03\x40\x00")
                while not stop.wait(TRICKLE_SECONDS):
                    conn.sendall(b"\x00")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
