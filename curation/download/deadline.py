"""The time one URL's fetch may take, all hops, retries and waits together, and how much of it is left.

A per-operation socket timeout never fires against a server that trickles one byte per second: each read gets its
byte in time. A `Budget` is the overall clock; bounded_http.py sets every read's socket timeout to what is left of
it (capped at the per-operation timeout) and checks it before each read, so no read outlives the deadline.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class DeadlineExceeded(TimeoutError):
    """The fetch's deadline passed. A TimeoutError, so the HTTP library reports it as a read timeout."""


class Budget:
    """Started on creation; `seconds` for the whole fetch, at most `per_operation` for any single socket wait."""

    def __init__(self, seconds: float, per_operation: float) -> None:
        self.seconds = seconds
        self.per_operation = per_operation
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def operation_timeout(self) -> float:
        """The socket timeout for the next connect, send or read; raises DeadlineExceeded when no time is left."""
        left = self.left()
        if left <= 0:
            raise DeadlineExceeded(f"the {self.seconds:g} s deadline passed")
        return min(self.per_operation, left)

    def exclude(self, seconds: float) -> None:
        """Do not count `seconds` (waiting for a free per-host slot is local queueing, not the server's time)."""
        self._end += max(0.0, seconds)

    @contextmanager
    def active(self) -> Iterator["Budget"]:
        """Makes this the budget that responses created in this thread (or task) read under."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


_ACTIVE: ContextVar[Budget | None] = ContextVar("download_budget", default=None)


def active_budget() -> Budget | None:
    return _ACTIVE.get()
