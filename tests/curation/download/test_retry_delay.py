import random
from datetime import UTC, datetime

import pytest

from curation.download.retry_delay import backoff_delay, retry_after_seconds

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # RFC 850
        ("Wed Oct 21 07:28:05 2015", 5.0),  # asctime: GMT without saying so
        ("Wed, 21 Oct 2015 09:28:10 +0200", 10.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("²", None),  # a digit to str.isdigit, not to HTTP
        ("Wed, 99 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_seconds(value: str, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_backoff_is_full_jitter_from_the_given_rng() -> None:
    reference = random.Random(42)
    expected = [reference.uniform(0, 0.5 * 2**n) for n in range(4)]
    rng = random.Random(42)
    assert [backoff_delay(0.5, n, rng) for n in range(4)] == expected
    assert all(0 <= d <= 0.5 * 2**n for n, d in enumerate(expected))
    assert backoff_delay(0.0, 3, random.Random(1)) == 0.0
