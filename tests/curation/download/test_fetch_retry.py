"""Waits between attempts: the server's Retry-After (429, 503) up to a cap, else jittered exponential backoff."""

import random
import time

from curation.download.config import DownloadConfig
from curation.download.fetch import Fetcher
from tests.curation.download.conftest import JPEG, MAX_BYTES, ImageServer


def config(**overrides) -> DownloadConfig:
    settings = {"output": "unused", "allow_loopback": True, "timeout": 1.0, "deadline": 10.0, "retries": 2}
    return DownloadConfig(**{**settings, "backoff": 0.5, "retry_after_cap": 30.0, "max_bytes": MAX_BYTES, **overrides})


class Sleeps(list):
    """Records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_retry_after_is_waited_then_the_retry_succeeds(image_server: ImageServer) -> None:
    result = Fetcher(config(backoff=0.01)).fetch(image_server.url("/retry-after-1.jpg"))  # 429, Retry-After: 1
    assert result.ok and result.data == JPEG and result.attempts == 2
    first, second = image_server.hit_times["/retry-after-1.jpg"]
    assert 1.0 <= second - first < 2.0  # Retry-After, not the 0.01 s backoff


def test_retry_after_replaces_the_backoff(image_server: ImageServer) -> None:
    sleeps = Sleeps()
    result = Fetcher(config(), sleep=sleeps).fetch(image_server.url("/busy-503.jpg"))  # 503, Retry-After: 0
    assert result.ok and result.attempts == 2
    assert sleeps == [0.0]


def test_retry_after_over_the_cap_gives_up_at_once(image_server: ImageServer) -> None:
    sleeps = Sleeps()
    start = time.monotonic()
    result = Fetcher(config(retries=3), sleep=sleeps).fetch(image_server.url("/retry-after-3600.jpg"))
    assert result.error_kind == "http_429" and result.attempts == 1 and sleeps == []
    assert result.error_message == (
        "HTTP 429 Too Many Requests; Retry-After '3600' asks for 3600 s, over retry_after_cap 30 s"
    )
    assert image_server.hits["/retry-after-3600.jpg"] == 1
    assert time.monotonic() - start < 1.0


def test_retry_after_past_the_deadline_gives_up_at_once(image_server: ImageServer) -> None:
    sleeps = Sleeps()
    result = Fetcher(config(deadline=2.0), sleep=sleeps).fetch(image_server.url("/retry-after-5.jpg"))
    assert result.error_kind == "http_429" and result.attempts == 1 and sleeps == []
    assert result.error_message.startswith(
        "HTTP 429 Too Many Requests; Retry-After of 5.00 s would end past the 2 s deadline ("
    )


def test_unparsable_retry_after_falls_back_to_the_jittered_backoff(image_server: ImageServer) -> None:
    sleeps = Sleeps()
    fetcher = Fetcher(config(retries=2), rng=random.Random(3), sleep=sleeps)
    result = fetcher.fetch(image_server.url("/retry-after-bad.jpg"))  # 503, Retry-After: soon
    assert result.error_kind == "http_503" and result.attempts == 3
    reference = random.Random(3)
    assert sleeps == [reference.uniform(0, 0.5), reference.uniform(0, 1.0)]


def test_backoff_is_jittered_from_the_injected_rng(image_server: ImageServer) -> None:
    sleeps = Sleeps()
    result = Fetcher(config(retries=3), rng=random.Random(1234), sleep=sleeps).fetch(image_server.url("/always500.jpg"))
    assert result.error_kind == "http_500" and result.attempts == 4
    reference = random.Random(1234)
    assert sleeps == [reference.uniform(0, 0.5), reference.uniform(0, 1.0), reference.uniform(0, 2.0)]
    assert sleeps != [0.5, 1.0, 2.0]


def test_a_backoff_past_the_deadline_gives_up_at_once(image_server: ImageServer) -> None:
    sleeps = Sleeps()
    fetcher = Fetcher(config(backoff=10.0, deadline=2.0), rng=random.Random(0), sleep=sleeps)
    result = fetcher.fetch(image_server.url("/always500.jpg"))
    delay = random.Random(0).uniform(0, 10.0)  # 8.44 s
    assert result.error_kind == "http_500" and result.attempts == 1 and sleeps == []
    assert result.error_message.startswith(
        f"HTTP 500 Internal Server Error; the backoff of {delay:.2f} s would end past the 2 s deadline ("
    )
