"""How long to wait before a retry: the server's Retry-After when it gives one, else jittered exponential backoff."""

import email.utils
import random
from datetime import UTC


def retry_after_seconds(value: str, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (RFC 9110 §10.2.3), or None when it is neither form.

    `value` is delay-seconds (digits only) or an HTTP date; a date in the past means "now". `now` is a Unix time.
    """
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # TypeError: older Pythons on some malformed dates
        return None
    if when.tzinfo is None:  # "-0000" and asctime dates; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def backoff_delay(backoff: float, attempt: int, rng: random.Random) -> float:
    """ "Full jitter": uniform in [0, backoff * 2**attempt], so threads that failed together do not retry together."""
    return rng.uniform(0.0, backoff * 2**attempt)
