"""At most N requests in flight per host from one shard task, so a URL list sorted by site does not hammer it.

The limit is per process: with K shard tasks running at once, a host sees at most K x N requests.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class HostLimiter:
    def __init__(self, per_host: int) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be >= 1, got {per_host}")
        self.per_host = per_host
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}  # highest concurrency reached per host, for tests and logs

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of the host's slots for the block; waits while all of them are taken."""
        host = host.lower()
        with self._lock:
            semaphore = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with semaphore:
            with self._lock:
                self._in_flight[host] = self._in_flight.get(host, 0) + 1
                self.peak[host] = max(self.peak.get(host, 0), self._in_flight[host])
            try:
                yield
            finally:
                with self._lock:
                    self._in_flight[host] -= 1
