import time

import pytest

from curation.download.config import DownloadConfig
from curation.download.fetch import Fetcher, image_extension
from curation.download.host_limiter import HostLimiter
from curation.download.robots_tag import opted_out
from tests.curation.download.conftest import JPEG, MAX_BYTES, PNG, SLOW_SECONDS, ImageServer, fake_resolver

TIMEOUT = 0.5


def config(**overrides) -> DownloadConfig:
    settings = {"output": "unused", "allow_loopback": True, "timeout": TIMEOUT, "retries": 1, "backoff": 0.01}
    return DownloadConfig(**{**settings, "max_bytes": MAX_BYTES, "max_redirects": 3, **overrides})


# path -> (extension or error kind, requests the server sees for that path)
CASES = {
    "/good.jpg": ("jpg", 1),
    "/good.png": ("png", 1),
    "/404.jpg": ("http_404", 1),  # 4xx is not retried
    "/always500.jpg": ("http_500", 2),  # 1 try + 1 retry
    "/flaky.jpg": ("jpg", 2),  # 500, then the retry succeeds
    "/page.html": ("bad_content_type", 1),
    "/fake.jpg": ("not_an_image", 1),
    "/empty.jpg": ("empty_body", 1),
    "/huge.jpg": ("too_large", 1),
    "/huge-unannounced.jpg": ("too_large", 1),
    "/noai.jpg": ("opted_out", 1),
    "/mybot-noai.jpg": ("opted_out", 1),
    "/otherbot-noai.jpg": ("jpg", 1),  # a directive for another crawler does not apply
    "/noai-semicolon.jpg": ("opted_out", 1),  # "noai; noimageai"
    "/scoped-noai.jpg": ("opted_out", 1),  # "otherbot: noindex, humans1b: noai"
    "/two-robots-headers.jpg": ("opted_out", 1),  # "otherbot: noai" + "humans1b: noindex"
    "/preview-none.jpg": ("jpg", 1),  # "max-image-preview: none"
    "/404-noai.jpg": ("opted_out", 1),  # every response is read for an opt-out
    "/redirect-noai": ("opted_out", 1),
    "/redirect-scoped-noai": ("opted_out", 1),
    "/redirect-otherbot-noai": ("jpg", 1),
    "/redirect-good": ("jpg", 1),
    "/redirect-relative": ("png", 1),
    "/loop-a": ("redirect_loop", 1),
    "/chain/3": ("jpg", 1),  # 3 redirects: the limit
    "/chain/4": ("too_many_redirects", 1),
    "/redirect-private": ("forbidden_address", 1),
    "/redirect-metadata": ("forbidden_address", 1),
    "/redirect-v6-linklocal": ("forbidden_address", 1),
    "/redirect-v6-metadata": ("forbidden_address", 1),
    "/redirect-mapped": ("forbidden_address", 1),
    "/redirect-unspecified": ("forbidden_address", 1),
    "/redirect-name-metadata": ("forbidden_address", 1),
    "/redirect-ftp": ("bad_url", 1),
}


@pytest.mark.parametrize("path", list(CASES))
def test_each_route_gives_its_outcome(image_server: ImageServer, path: str) -> None:
    fetcher = Fetcher(config(), resolver=fake_resolver({"metadata.test": ["169.254.169.254"]}))
    result = fetcher.fetch(image_server.url(path))
    expected, hits = CASES[path]
    assert (result.ext if result.ok else result.error_kind) == expected, result.error_message
    assert image_server.hits[path] == hits
    if expected == "jpg":
        assert result.data == JPEG
    if expected == "png":
        assert result.data == PNG
    fetcher.close()


@pytest.mark.parametrize("path", ["/redirect-noai", "/redirect-scoped-noai"])
def test_an_opt_out_on_a_redirect_hop_ends_the_fetch(image_server: ImageServer, path: str) -> None:
    result = Fetcher(config()).fetch(image_server.url(path))
    assert result.error_kind == "opted_out" and result.attempts == 1
    assert result.error_message.endswith(f"from {image_server.url(path)}")
    assert image_server.hits["/good.jpg"] == 0  # the redirect target is never requested


def test_redirect_hops_are_each_counted(image_server: ImageServer) -> None:
    result = Fetcher(config()).fetch(image_server.url("/chain/2"))
    assert result.ok and result.attempts == 3
    assert [image_server.hits[f"/chain/{n}"] for n in (2, 1, 0)] == [1, 1, 1]


def test_slow_server_times_out_after_each_retry(image_server: ImageServer) -> None:
    start = time.monotonic()
    result = Fetcher(config(retries=1)).fetch(image_server.url("/slow.jpg"))
    assert result.error_kind == "timeout" and result.attempts == 2
    assert image_server.hits["/slow.jpg"] == 2
    assert 2 * TIMEOUT <= time.monotonic() - start < SLOW_SECONDS


def test_loopback_is_refused_unless_allowed(image_server: ImageServer) -> None:
    result = Fetcher(config(allow_loopback=False)).fetch(image_server.url("/good.jpg"))
    assert result.error_kind == "forbidden_address" and "loopback" in result.error_message
    assert image_server.hits["/good.jpg"] == 0  # refused before any connection


def test_v6_loopback_is_refused_without_allow_loopback() -> None:
    result = Fetcher(config(allow_loopback=False)).fetch("http://[::1]:9/a.jpg")
    assert result.error_kind == "forbidden_address" and "loopback" in result.error_message
    assert result.attempts == 0  # no request was sent


def test_connection_goes_to_the_checked_ip_with_the_name_as_host(image_server: ImageServer) -> None:
    """DNS rebinding: the name is resolved once per hop, and the connection uses that checked address."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a second lookup would get a private address
    calls = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    port = image_server.base.rsplit(":", 1)[1]
    result = Fetcher(config(), resolver=rebinding).fetch(f"http://images.test:{port}/good.jpg")
    assert result.ok and calls == ["images.test"]
    assert image_server.host_headers == [f"images.test:{port}"]


def test_connection_refused_is_retried_then_reported(free_port: int) -> None:
    result = Fetcher(config(retries=2)).fetch(f"http://127.0.0.1:{free_port}/a.jpg")
    assert result.error_kind == "connection_error" and result.attempts == 3


def test_user_agent_is_sent(image_server: ImageServer) -> None:
    Fetcher(config(user_agent="test-agent/1")).fetch(image_server.url("/good.jpg"))
    assert image_server.user_agents == ["test-agent/1"]


def test_disallowed_directives_can_be_emptied(image_server: ImageServer) -> None:
    assert Fetcher(config(disallowed_header_directives=[])).fetch(image_server.url("/noai.jpg")).ok


def test_per_host_concurrency_is_never_exceeded(image_server: ImageServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    limiter = HostLimiter(2)
    fetcher = Fetcher(config(), limiter=limiter)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(fetcher.fetch, [image_server.url("/good.jpg")] * 16))
    assert all(r.ok for r in results)
    assert limiter.peak == {"127.0.0.1": 2}


@pytest.mark.parametrize(
    ("head", "ext"),
    [
        (b"\xff\xd8\xff\xe0", "jpg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"GIF89a", "gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"BM\0\0", "bmp"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "heic"),
        (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf", "avif"),
        (b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", None),  # a video
        (b"<html>", None),
    ],
)
def test_image_extension(head: bytes, ext: str | None) -> None:
    assert image_extension(head + b"\0" * 32) == ext


def test_opted_out_reads_agent_specific_directives() -> None:
    bad = frozenset({"noai", "noindex"})
    assert opted_out(["NoAI"], "humans1b", bad)
    assert opted_out(["max-image-preview:large", "humans1b: noindex"], "humans1b", bad)
    assert not opted_out(["googlebot: noindex", "nofollow"], "humans1b", bad)
    assert not opted_out([], "humans1b", bad)
