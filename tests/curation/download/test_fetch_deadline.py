"""The per-URL deadline against servers that answer, but too slowly to ever finish."""

import threading
import time

import pytest

from curation.download.config import DownloadConfig
from curation.download.deadline import Budget, DeadlineExceeded
from curation.download.fetch import Fetcher
from curation.download.host_limiter import HostLimiter
from tests.curation.download.conftest import JPEG, MAX_BYTES, SLOW_SECONDS, ImageServer

TIMEOUT, DEADLINE = 1.0, 2.0
MARGIN = 2.0  # an upper bound for a loaded machine, not a speed benchmark


def config(**overrides) -> DownloadConfig:
    settings = {"output": "unused", "allow_loopback": True, "timeout": TIMEOUT, "deadline": DEADLINE}
    return DownloadConfig(**{**settings, "retries": 1, "backoff": 0.01, "max_bytes": MAX_BYTES, **overrides})


def timed_fetch(fetcher: Fetcher, url: str):
    start = time.monotonic()
    result = fetcher.fetch(url)
    return result, time.monotonic() - start


@pytest.mark.parametrize(
    ("path", "when"),
    [("/trickle-head.jpg", "while connecting or reading the response head"), ("/trickle-body.jpg", "while reading")],
)
def test_a_trickling_server_ends_at_the_deadline(image_server: ImageServer, path: str, when: str) -> None:
    # one byte per 0.2 s: a 1 s read timeout never fires, and the whole would take minutes
    result, elapsed = timed_fetch(Fetcher(config()), image_server.url(path))
    assert result.error_kind == "deadline_exceeded" and result.data is None
    assert result.error_message.startswith(f"the 2 s deadline passed {when}")
    assert result.attempts == 1 and image_server.hits[path] == 1  # no retry: the deadline is spent
    assert DEADLINE <= elapsed < DEADLINE + MARGIN


def test_a_trickled_tls_handshake_ends_at_the_deadline(tls_trickle_port: int) -> None:
    # the handshake is one call bounded by min(timeout, time left): 1 s, a retry, then the 1 s that are left
    result, elapsed = timed_fetch(Fetcher(config()), f"https://127.0.0.1:{tls_trickle_port}/a.jpg")
    assert result.error_kind == "deadline_exceeded" and result.attempts == 2
    assert DEADLINE <= elapsed < DEADLINE + MARGIN


def test_the_deadline_spans_retries(image_server: ImageServer) -> None:
    # /slow.jpg answers after 2.5 s: attempt 1 hits the 1 s read timeout, attempt 2 gets the 0.5 s that are left
    result, elapsed = timed_fetch(Fetcher(config(deadline=1.5, retries=3)), image_server.url("/slow.jpg"))
    assert result.error_kind == "deadline_exceeded" and result.attempts == 2
    assert image_server.hits["/slow.jpg"] == 2
    assert 1.5 <= elapsed < 1.5 + MARGIN < SLOW_SECONDS + MARGIN


def test_a_fast_response_is_untouched_by_the_deadline(image_server: ImageServer) -> None:
    result = Fetcher(config(deadline=0.5)).fetch(image_server.url("/redirect-good"))
    assert result.ok and result.data == JPEG and result.attempts == 2


def test_waiting_for_a_host_slot_does_not_count(image_server: ImageServer) -> None:
    """A URL queued behind a slow one of the same host keeps its own deadline for its own request."""
    limiter = HostLimiter(1)
    slow = Fetcher(config(deadline=2.0), limiter=limiter)  # holds the only slot for 2 s
    quick = Fetcher(config(deadline=0.5), limiter=limiter)
    results = {}
    holder = threading.Thread(target=lambda: results.update(slow=slow.fetch(image_server.url("/trickle-body.jpg"))))
    holder.start()
    while not image_server.hits["/trickle-body.jpg"]:
        time.sleep(0.01)
    result, waited = timed_fetch(quick, image_server.url("/good.jpg"))
    holder.join()
    assert results["slow"].error_kind == "deadline_exceeded"
    assert result.ok and result.data == JPEG
    assert waited > 1.0  # it queued for longer than its whole deadline, and still got its time


def test_budget() -> None:
    budget = Budget(10.0, per_operation=1.0)
    assert budget.operation_timeout() == 1.0 and not budget.expired()
    spent = Budget(0.0, per_operation=1.0)
    assert spent.expired()
    with pytest.raises(DeadlineExceeded, match="the 0 s deadline passed"):
        spent.operation_timeout()
    spent.exclude(5.0)
    assert 4.0 < spent.left() <= 5.0 and spent.operation_timeout() == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"deadline": 0}, r"deadline=0 is out of range: must be > 0"),
        ({"retry_after_cap": -1}, r"retry_after_cap=-1 is out of range: must be >= 0"),
    ],
)
def test_bad_deadline_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**overrides)
